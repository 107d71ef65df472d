"""The benchmark harness behind `make bench`: seed, serve, load with wrk, replay the SQL floor."""
