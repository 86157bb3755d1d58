// Package winetest is the test helper for differential tests that run
// programs under Wine, and for tests that read the shared test data.
//
// Wine 8.0's x86-64 ntdll implements RtlAddFunctionTable,
// RtlLookupFunctionEntry, RtlVirtualUnwind and the growable and callback
// function-table APIs, so a Windows program run under Wine on Linux is an
// oracle for the ntdll side of this project. The quirks in which Wine 8.0
// differs from Windows are listed in reference/anchors.md ("Wine 8.0 as an
// oracle") in the shared directory.
//
// # Shared directory
//
// Read-only material that is not part of the module lives in a directory
// named shared beside the repository clone (../shared relative to the module
// root). [SharedDir] and [Testdata] locate it from the test's working
// directory. When it is missing, tests are skipped, unless the environment
// variable CI is non-empty, in which case they fail.
//
// # Wine
//
// [Require] finds wine and the MinGW-w64 cross compiler
// x86_64-w64-mingw32-gcc, prepares a headless Wine prefix, and starts a
// persistent wineserver so that each program starts in tens of
// milliseconds instead of a quarter of a second. The prefix is $WINEPREFIX,
// or $HOME/.cache/fntable/wine-prefix when that is unset. A missing or
// unprepared prefix is prepared by the shared wine/setup-prefix.sh script,
// which also installs the bcryptprimitives.dll shim that Go 1.22 and later
// need on Wine 8.0. Preparation takes about 10 s and 700 MB of disk, and a
// lock file beside the prefix serialises it between the test processes that
// "go test ./..." runs in parallel.
//
// Missing tools skip the test with the command that installs them on Debian,
// or fail it when CI is set:
//
//	apt-get install -y --no-install-recommends wine64 wine gcc-mingw-w64-x86-64-win32
//
// [Env.BuildC] compiles C programs with MinGW-w64 and caches the results by
// content; [Env.Run] runs a program under Wine and returns its standard
// output.
//
// Wine's helper processes (services.exe, winedevice.exe and others) outlive
// the program that started them and inherit its standard streams. If one of
// those is a pipe, whoever reads the pipe waits seconds for them to exit, or
// for ever while a persistent wineserver keeps them alive. This package
// therefore never gives a Wine process a pipe: the wineserver and the
// warm-up run get /dev/null, and [Env.Run] connects the program to
// temporary files.
package winetest
