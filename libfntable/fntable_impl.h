/*
 * fntable_impl.h: declarations shared by the Go half of libfntable (lib.go)
 * and its C half (fntable.c). Not installed; users include fntable.h.
 */
#ifndef FNTABLE_IMPL_H
#define FNTABLE_IMPL_H

#include <stdint.h>

#include "fntable.h"

/* fntable_call_callback calls a PGET_RUNTIME_FUNCTION_CALLBACK. The callback
   and its Context travel through Go as integers, so that Go never holds a
   value that only looks like a pointer. */
PRUNTIME_FUNCTION fntable_call_callback(uintptr_t callback, DWORD64 control_pc, uintptr_t context);

/* fntable_unwind_result carries what RtlVirtualUnwind returns besides the
   CONTEXT, as integers; fntable.c turns them into pointers. */
typedef struct fntable_unwind_result {
    DWORD64 handler;      /* address of the handler, or 0 */
    DWORD64 handler_data; /* address of its data, or 0 */
    DWORD64 establisher;  /* establisher frame */
    DWORD64 floating[16]; /* KNONVOLATILE_CONTEXT_POINTERS.FloatingContext; 0: not restored */
    DWORD64 integer[16];  /* KNONVOLATILE_CONTEXT_POINTERS.IntegerContext; 0: not restored */
} fntable_unwind_result;

#endif /* FNTABLE_IMPL_H */
