//! pylon-loadtest (stub).
