"""The one channel-layer group of each user: every live page a user has open listens on it."""


def user_group(user_id: int) -> str:
    return f"live.user.{user_id}"
