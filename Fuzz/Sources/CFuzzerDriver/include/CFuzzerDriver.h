// libFuzzer's entry point for a program that has its own main (LLVM 11 and later): it parses the
// libFuzzer flags in argv and runs `callback` on every input, as libFuzzer's own main does.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
