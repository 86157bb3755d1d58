package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/fntable/fntable/provider"
)

// providerFlags are the flags of the commands that resolve callback
// tables through out-of-process provider libraries (stack, tables).
type providerFlags struct {
	trustList string
	trusted   []string
	isolate   bool
	timeout   time.Duration
	none      bool
}

// register adds the provider flags to fs.
func (p *providerFlags) register(fs *flag.FlagSet) {
	p.registerTrust(fs)
	fs.BoolVar(&p.isolate, "isolate-providers", false, "call each provider in a helper process, killed after --provider-timeout")
	p.timeout = provider.DefaultTimeout
	fs.Func("provider-timeout", "how long an isolated provider may take, such as 500ms (default "+provider.DefaultTimeout.String()+")", func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration such as 2s or 500ms", s)
		}
		p.timeout = d
		return nil
	})
	fs.BoolVar(&p.none, "no-providers", false, "load no provider library: callback tables stay unresolved")
}

// registerTrust adds the flags that make the trust list to fs.
func (p *providerFlags) registerTrust(fs *flag.FlagSet) {
	fs.StringVar(&p.trustList, "trust-list", "", "read the trust list from `FILE` instead of "+provider.DefaultListFile)
	fs.Func("trust-provider", "also trust the provider library at absolute `PATH` (repeatable)", func(s string) error {
		if !filepath.IsAbs(s) {
			return fmt.Errorf("%q is not an absolute path", s)
		}
		p.trusted = append(p.trusted, s)
		return nil
	})
}

// listFile returns the path of the list file the flags name.
func (p *providerFlags) listFile() string {
	if p.trustList != "" {
		return p.trustList
	}
	return provider.DefaultListFile
}

// trust loads the trust list the flags name.
func (p *providerFlags) trust() (*provider.Trust, error) {
	return provider.LoadTrust(provider.TrustOptions{File: p.trustList, Extra: p.trusted})
}

// resolver returns the Provider the flags ask for, or nil with
// --no-providers. Warnings about the list go to stderr.
func (p *providerFlags) resolver(stderr io.Writer) (*provider.Resolver, error) {
	if p.none {
		return nil, nil
	}
	t, err := p.trust()
	if err != nil {
		return nil, err
	}
	for _, w := range t.Warnings() {
		fmt.Fprintf(stderr, "fntable: trust list: %v\n", w)
	}
	return &provider.Resolver{Trust: t, Isolate: p.isolate, Timeout: p.timeout}, nil
}

const providersHelp = `
A callback table (RtlInstallFunctionTableCallback) has no entries in the
target's published list: it names a provider library, and tools that
walk the target from outside load that library and call its export
OutOfProcessFunctionTableCallback for the entries (libfntable/include/
fntable.h declares it). A target can name any path, so a library is
loaded only if its path is on the trust list, as Windows loads only the
libraries listed under the KnownFunctionTableDlls registry key:

  - the list file, ` + provider.DefaultListFile + ` (or
    --trust-list FILE): one absolute path per line, '#' comments;
  - plus each --trust-provider PATH of the command line.

A library is refused when its path is not absolute, when its real path
(symlinks resolved) is not exactly a listed path, or when it, a directory
above it, or the list file can be written by anyone but root and the
invoking user. Nothing is loaded before these checks.

A provider runs inside fntable, unless --isolate-providers: then each call
runs in a helper process (fntable itself), killed after
--provider-timeout, so that a provider that crashes, hangs or exits costs
an error message, not the walk.`

func newProvidersCmd() *command {
	c := &command{
		name:    "providers",
		args:    "[--json] [--trust-list FILE] [--trust-provider PATH]... [--check PATH]",
		summary: "show the trust list of provider libraries, or whether one would be loaded",
		help: providersHelp + `

Providers prints the trust list: each path and where it comes from, and
the lines of the list file that were ignored. With --check PATH it says
whether the library at PATH would be loaded and why, and exits 1 if it
would not.

With --json the output is one document:
  {"file": "..." | null, "entries": [{"path": "...", "source": "FILE:LINE"}...],
   "warnings": ["..."], "check": null | {"path": "...", "real_path": "...",
   "trusted": true, "reason": "..."}}`,
	}
	c.run = func(args []string, stdout, stderr io.Writer) error {
		fs := c.flagSet()
		asJSON := fs.Bool("json", false, "print one JSON document")
		var pf providerFlags
		pf.registerTrust(fs)
		check := fs.String("check", "", "say whether the library at `PATH` would be loaded, and why")
		if err := c.parse(fs, args, stdout); err != nil {
			return err
		}
		if fs.NArg() != 0 {
			return c.usagef("providers takes no arguments")
		}
		t, err := pf.trust()
		if err != nil {
			return err
		}
		res := providersResult{Entries: []trustEntry{}, Warnings: []string{}, lookedFor: pf.listFile()}
		if f := t.File(); f != "" {
			res.File = &f
		}
		for _, e := range t.Entries() {
			res.Entries = append(res.Entries, trustEntry{e.Path, e.Source})
		}
		for _, w := range t.Warnings() {
			res.Warnings = append(res.Warnings, w.Error())
		}
		if *check != "" {
			d := t.Check(*check)
			res.Check = &checkResult{Path: d.Path, RealPath: d.RealPath, Trusted: d.Trusted, Reason: d.Reason}
		}
		if err := writeListing(stdout, *asJSON, res, func(w io.Writer) { writeProvidersText(w, &res) }); err != nil {
			return err
		}
		if res.Check != nil && !res.Check.Trusted {
			return fmt.Errorf("%s would not be loaded", res.Check.Path)
		}
		return nil
	}
	return c
}

type providersResult struct {
	File     *string      `json:"file"` // nil: there is no list file
	Entries  []trustEntry `json:"entries"`
	Warnings []string     `json:"warnings"`
	Check    *checkResult `json:"check"`

	lookedFor string // the list file's path
}

type trustEntry struct {
	Path   string `json:"path"`
	Source string `json:"source"`
}

type checkResult struct {
	Path     string `json:"path"`
	RealPath string `json:"real_path"`
	Trusted  bool   `json:"trusted"`
	Reason   string `json:"reason"`
}

func writeProvidersText(w io.Writer, res *providersResult) {
	if res.File != nil {
		fmt.Fprintf(w, "trust list: %s\n", *res.File)
	} else {
		fmt.Fprintf(w, "trust list: none (no file %s)\n", res.lookedFor)
	}
	if len(res.Entries) == 0 {
		fmt.Fprintln(w, "  (empty: no provider library will be loaded)")
	}
	for _, e := range res.Entries {
		fmt.Fprintf(w, "  %s  (%s)\n", e.Path, e.Source)
	}
	for _, warn := range res.Warnings {
		fmt.Fprintf(w, "  ignored: %s\n", warn)
	}
	if c := res.Check; c != nil {
		verdict := "would not be loaded"
		if c.Trusted {
			verdict = "would be loaded"
		}
		fmt.Fprintf(w, "%s %s: %s\n", c.Path, verdict, c.Reason)
	}
}
