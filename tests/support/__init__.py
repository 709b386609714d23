"""What the tests and the benchmarks share: harnesses for the real programs they run (control
plane, webhook server, registry), the golden cases, AdmissionReview builders, and small helpers
(`wait_until`, `free_port`, `stop`). Benchmarks import it as `tests.support`."""
