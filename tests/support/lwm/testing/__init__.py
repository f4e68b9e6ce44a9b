"""Test support (not product code): local PostgreSQL and S3 servers, synthetic and hetero
markets of learnwares. Used by tests/, bench/ and examples/; never installed in service images."""
