"""The local world of `hopsplane dev`: a Hopsworks stand-in registered as a cluster, demo
data made through the real services, and screenshots of the console for reviewers.

Nothing here runs in production: it is what a newcomer (or a reviewer) starts on a laptop
to see every page of the console with data. The stand-in is also the strict fake the
tests use (``hopsworks_standin``)."""
