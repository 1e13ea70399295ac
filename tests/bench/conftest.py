def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "bench: runs the benchmark harness end to end at a tiny scale (skip: -m 'not bench')",
    )
