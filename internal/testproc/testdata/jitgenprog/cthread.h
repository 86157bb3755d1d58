#include <stddef.h>
#include <stdint.h>

// start_jitgen_thread starts a thread named name, with a stack of
// stack_size bytes, that calls the generated function at entry with the
// Microsoft x64 calling convention, and returns its thread ID, or -1.
int start_jitgen_thread(uintptr_t entry, size_t stack_size, const char *name);
