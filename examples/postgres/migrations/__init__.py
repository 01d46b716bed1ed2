"""The example's migrations: numbered SQL steps applied once each, in order, in one transaction per step."""
