"""The steps a change is made of, each on one target: build, verify.build, health waits, the public route, preflight, image retention, the revision to deploy."""
