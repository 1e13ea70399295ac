// The key page, just after a key is made: copy the new key in one tap (the button stays hidden
// where the clipboard API is unavailable).
(function () {
  "use strict";
  const button = document.getElementById("copy-key");
  if (!navigator.clipboard || !button) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    const text = document.querySelector(button.dataset.copy).textContent.trim();
    navigator.clipboard.writeText(text).then(function () { button.textContent = "Copied"; });
  });
})();
