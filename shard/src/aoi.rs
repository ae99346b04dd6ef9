//! TEMPORARY STUB (being written by a teammate).
