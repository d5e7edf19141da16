"""Test doubles for the console, kept out of the installed product (pyproject excludes
this package from the wheel; tests/test_wheel.py checks).

`fake.FakeNode` serves the daemon's HTTP API from memory for the console's tests,
screenshots and `make bench-console`; `fake_app` runs the console against it
(`python -m console.testing.fake_app`); `fake_data` builds its JSON and `fakenode/` holds
its routes, controller and stories.
"""
