#include <stdint.h>

// start_jit_thread starts a thread named name that calls the generated
// function at entry with arg, and returns its thread ID, or -1.
int start_jit_thread(uintptr_t entry, long arg, const char *name);

// c_block_addr returns the address of c_block(long fd), which blocks in
// read(fd) for ever.
uintptr_t c_block_addr(void);
