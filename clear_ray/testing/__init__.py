"""Real test infrastructure shared by tests/ and benchmarks/: clip factory, S3 server, Ray head.

Nothing here is imported by the production code paths.
"""
