// Fntable makes generated code (JIT code) unwindable and symbolizable with
// the Windows x64 function-table model: it decodes function tables and
// unwind information, performs RtlVirtualUnwind steps, symbolizes
// addresses of processes, dumps and files, and demonstrates the whole job
// ("fntable demo").
//
// Usage:
//
//	fntable <command> [flags] [arguments]
//
// Flags and arguments may come in any order; after "--" everything is an
// argument. Run "fntable help" for the list of commands and "fntable <command> -h"
// for the flags of one. Results go to standard output, diagnostics to
// standard error. The exit status is 2 for a usage error, 1 for any other
// failure and 0 otherwise.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"

	"github.com/fntable/fntable/internal/demotarget"
	"github.com/fntable/fntable/provider"
)

func main() {
	if status, ok := runAsChild(); ok {
		os.Exit(status)
	}
	log.SetFlags(0)
	log.SetPrefix("fntable: ")
	delayFirstGC()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// runAsChild runs fntable as one of the processes it starts itself, when
// the environment says it is one: the helper process of an isolated
// provider call (--isolate-providers), or the target of "fntable demo".
// ok is false for an ordinary run.
func runAsChild() (status int, ok bool) {
	switch {
	case provider.IsHelper():
		return provider.HelperMain(), true
	case demotarget.IsTarget():
		return demotarget.Main(os.Args[1:]), true
	}
	return 0, false
}

// command is one subcommand. Each lives in its own file with a
// newXxxCmd constructor and is listed in [commands].
type command struct {
	name    string // what the user types, e.g. "unwindinfo"
	args    string // synopsis of flags and arguments, e.g. "[--json] FILE"
	summary string // one line for "fntable help"
	help    string // paragraphs for "fntable <name> -h", after the usage line
	// run parses args (the arguments after the command name) and does the
	// work, writing results to stdout and diagnostics to stderr. It returns
	// a *usageError for bad arguments (see [command.usagef] and
	// [command.parse]), flag.ErrHelp after printing help for -h, and any
	// other error for a failure.
	run func(args []string, stdout, stderr io.Writer) error
}

// commands returns the command table, in the order "fntable help" lists
// them.
func commands() []*command {
	return []*command{
		newDemoCmd(),       // demo.go
		newUnwindinfoCmd(), // unwindinfo.go
		newUnwindCmd(),     // unwind.go
		newSymCmd(),        // sym.go
		newStackCmd(),      // stack.go
		newTablesCmd(),     // tables.go
		newDumpCmd(),       // dump.go
		newProvidersCmd(),  // providers.go
		newVerifyCmd(),     // verify.go
	}
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct {
	cmd *command // the command whose usage to print, or nil for fntable's
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a *usageError for c.
func (c *command) usagef(format string, args ...any) error {
	return &usageError{cmd: c, err: fmt.Errorf(format, args...)}
}

// flagSet returns a FlagSet for c that reports errors only through
// [command.parse].
func (c *command) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parse parses args into fs. Flags and arguments may come in any order
// ("fntable unwindinfo FILE --json"); after "--" everything is an argument.
// fs.Args() then holds the arguments in their order. For -h or -help it
// prints c's help to stdout and returns flag.ErrHelp; for a bad flag it
// returns a *usageError.
func (c *command) parse(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	var positional []string
	for {
		err := fs.Parse(args)
		switch {
		case errors.Is(err, flag.ErrHelp):
			c.printHelp(stdout, fs)
			return flag.ErrHelp
		case err != nil:
			return &usageError{cmd: c, err: err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		// The flag package stops at the first argument: keep it and go on
		// with what follows.
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	// Parse sets no flag after "--": it only leaves fs.Args() as wanted.
	return fs.Parse(append([]string{"--"}, positional...))
}

// printHelp prints the usage line, the help text and the flags of c.
func (c *command) printHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: fntable %s %s\n\n%s\n", c.name, c.args, strings.TrimSpace(c.help))
	if fs != nil {
		var flags strings.Builder
		fs.SetOutput(&flags)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		if flags.Len() > 0 {
			fmt.Fprintf(w, "\nFlags:\n%s", flags.String())
		}
	}
}

// printUsage prints fntable's usage and the command list.
func printUsage(w io.Writer) {
	fmt.Fprint(w, "usage: fntable <command> [flags] [arguments]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "  help         show this list, or the help of a command\n\n"+
		"Flags and arguments may come in any order. Run \"fntable <command> -h\" for\n"+
		"a command's flags. Exit status: 0 success, 1 failure, 2 usage error.\n")
}

// lookup returns the command named name.
func lookup(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// dispatch runs the command named by args[0].
func dispatch(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &usageError{err: errors.New("no command")}
	}
	name, rest := args[0], args[1:]
	if isHelpWord(name) {
		if len(rest) == 0 || len(rest) == 1 && isHelpWord(rest[0]) {
			printUsage(stdout) // "help help", "help -h": the list is help's help
			return nil
		}
		c := lookup(rest[0])
		if c == nil || len(rest) > 1 {
			return &usageError{err: fmt.Errorf("help: unknown command %q", strings.Join(rest, " "))}
		}
		return c.run([]string{"-h"}, stdout, stderr)
	}
	c := lookup(name)
	if c == nil {
		return &usageError{err: fmt.Errorf("unknown command %q", name)}
	}
	return c.run(rest, stdout, stderr)
}

// isHelpWord reports whether s asks for help.
func isHelpWord(s string) bool {
	switch s {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// run runs the command line args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	err := dispatch(args, stdout, stderr)
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		if ue.cmd != nil {
			fmt.Fprintf(stderr, "fntable %s: %v\nusage: fntable %s %s\nRun \"fntable %[1]s -h\" for details.\n",
				ue.cmd.name, ue.err, ue.cmd.name, ue.cmd.args)
		} else {
			fmt.Fprintf(stderr, "fntable: %v\n", ue.err)
			printUsage(stderr)
		}
		return 2
	}
	fmt.Fprintf(stderr, "fntable: %v\n", err)
	return 1
}
