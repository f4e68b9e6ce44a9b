"""Generated gRPC stubs (learnware.v1) and the small helpers every service shares."""
