"""Run-start storms against a local Outpost tree, driven by Locust.

`loadtest/locustfile.py` is the Locust scenario (one `HLTNode` user per simulated farm node);
`loadtest.runner.run_loadtest` brings up a `LocalStack`, runs Locust headless against it, plays
run control (flush, then signal the run start) and summarises what the nodes reported.
"""
