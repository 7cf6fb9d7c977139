"""Tests of randomized smoothing (:mod:`verinet.smoothing`) and its command."""
