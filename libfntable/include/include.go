// Package include holds the C headers of fntable's C API, for programs
// that compile C code against them at run time (fntable demo builds its
// example provider library with them).
//
//   - fntable.h: the Windows x64 dynamic function table API of winnt.h
//     (RtlAddFunctionTable, RtlInstallFunctionTableCallback, …) that
//     libfntable implements, and the out-of-process provider ABI
//     (OutOfProcessFunctionTableCallback) that provider libraries export.
//
// C programs compile with -I pointing at this directory.
package include

import "embed"

// Headers holds the header files, at the root of the FS (fntable.h).
//
//go:embed *.h
var Headers embed.FS
