use crate::harness::suite;
