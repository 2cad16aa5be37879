// Nothing to compile: the declaration in include/CFuzzerDriver.h is implemented by libFuzzer,
// which `-sanitize=fuzzer` links.
