//! Signed HTTP requests for the file plane and `/metrics` (in progress).
