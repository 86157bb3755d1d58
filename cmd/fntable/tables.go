package main

import (
	"fmt"
	"io"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/internal/procmem"
)

func newTablesCmd() *command {
	c := &command{
		name:    "tables",
		args:    "[--json] [provider flags] PID",
		summary: "list the dynamic function tables a running process publishes",
		help: `
Tables lists every dynamic function table in the published registries of
the process PID (the memfd "fntable-function-tables" mappings of its
/proc/PID/maps): for each table its type (RF_SORTED, RF_UNSORTED, or
RF_CALLBACK for a table installed with RtlInstallFunctionTableCallback),
whether it is growable, the code range it covers, the base its RVAs are
relative to, its entry count, the out-of-process provider library a
callback table names, and its status. The process is not stopped: each
list is copied at one instant (a consistent snapshot).

Status is "ok" for a table whose entries were read. A callback table's
entries come from the provider library it names, which is loaded only if
the trust list allows (see "fntable providers -h"): its status says
whether the provider was trusted and loaded, and how many entries it
returned, or why there are none.

With --json the output is one document:
  {"pid": N, "lists": [{"address": "0x...", "generation": N,
    "error": null | "...", "tables": [{"record": "0x...",
      "type": "RF_SORTED", "growable": false, "minimum": "0x...",
      "maximum": "0x...", "base": "0x...", "entries": N,
      "max_entries": N, "identifier": "0x..." | null,
      "provider": "..." | null, "status": "ok",
      "resolution": null | {"trusted": true, "loaded": true,
        "isolated": false, "entries": N, "microseconds": N,
        "error": null | "..."}}...]}...]}`,
	}
	c.run = func(args []string, stdout, stderr io.Writer) error {
		fs := c.flagSet()
		asJSON := fs.Bool("json", false, "print one JSON document")
		var pf providerFlags
		pf.register(fs)
		if err := c.parse(fs, args, stdout); err != nil {
			return err
		}
		pid, err := c.parsePID(fs.Args())
		if err != nil {
			return err
		}
		resolver, err := pf.resolver(stderr)
		if err != nil {
			return err
		}
		var p remote.Provider
		if resolver != nil {
			p = resolver
		}
		res, err := readTables(pid, p)
		if err != nil {
			return err
		}
		return writeListing(stdout, *asJSON, res, func(w io.Writer) { writeTablesText(w, res) })
	}
	return c
}

type tablesResult struct {
	Pid   int         `json:"pid"`
	Lists []tableList `json:"lists"`
}

type tableList struct {
	Address    hexUint     `json:"address"`
	Generation uint64      `json:"generation"`
	Error      *string     `json:"error"`
	Tables     []tableInfo `json:"tables"`
}

type tableInfo struct {
	Record     hexUint         `json:"record"`
	Type       string          `json:"type"`
	Growable   bool            `json:"growable"`
	Minimum    hexUint         `json:"minimum"`
	Maximum    hexUint         `json:"maximum"`
	Base       hexUint         `json:"base"`
	Entries    uint32          `json:"entries"`
	MaxEntries uint32          `json:"max_entries"`
	Identifier *hexUint        `json:"identifier"`
	Provider   *string         `json:"provider"`
	Status     string          `json:"status"`
	Resolution *resolutionInfo `json:"resolution"`
}

// resolutionInfo is what became of a callback table's provider.
type resolutionInfo struct {
	Trusted      bool    `json:"trusted"`
	Loaded       bool    `json:"loaded"`
	Isolated     bool    `json:"isolated"`
	Entries      int     `json:"entries"`
	Microseconds int64   `json:"microseconds"`
	Error        *string `json:"error"`
}

// readTables reads the published lists of process pid, resolving callback
// tables through p (nil: none).
func readTables(pid int, p remote.Provider) (*tablesResult, error) {
	maps, err := remote.Find(pid)
	if err != nil {
		return nil, err
	}
	mem, err := procmem.Open(pid)
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	res := &tablesResult{Pid: pid, Lists: []tableList{}}
	for _, m := range maps {
		l := tableList{Address: hexUint(m.Addr), Tables: []tableInfo{}}
		snap, err := remote.Read(mem, m)
		if err != nil {
			l.Error = ptr(err.Error())
			res.Lists = append(res.Lists, l)
			continue
		}
		l.Generation = snap.Generation
		if p != nil {
			snap.UseProvider(pid, p)
		}
		for i := range snap.Tables {
			t := &snap.Tables[i]
			ti := tableInfo{
				Record: hexUint(t.Record), Type: t.Type.String(), Growable: t.Growable,
				Minimum: hexUint(t.MinimumAddress), Maximum: hexUint(t.MaximumAddress), Base: hexUint(t.BaseAddress),
				Entries: t.EntryCount, MaxEntries: t.MaximumEntryCount, Status: "ok",
			}
			if t.Type == functable.RF_CALLBACK {
				ti.Identifier = ptr(hexUint(t.Identifier()))
				ti.Entries, ti.MaxEntries = 0, 0
				ti.Status = callbackStatus(snap, t, p != nil, &ti)
			}
			if t.OutOfProcessCallbackDll != "" {
				ti.Provider = ptr(t.OutOfProcessCallbackDll)
			}
			l.Tables = append(l.Tables, ti)
		}
		res.Lists = append(res.Lists, l)
	}
	return res, nil
}

// callbackStatus resolves callback table t (when a provider is
// configured) and describes the outcome; it fills ti's resolution.
func callbackStatus(snap *remote.Snapshot, t *remote.Table, providers bool, ti *tableInfo) string {
	switch {
	case t.OutOfProcessCallbackDll == "":
		return "callback: no out-of-process provider named; unwindable only inside the process"
	case !providers:
		return "callback: entries come from the provider, which is not loaded (--no-providers)"
	}
	r := snap.Resolve(t)
	ti.Resolution = &resolutionInfo{Trusted: r.Trusted, Loaded: r.Loaded, Isolated: r.Isolated, Entries: r.Entries, Microseconds: r.Duration.Microseconds()}
	ti.Entries = uint32(r.Entries)
	if r.Err != nil {
		ti.Resolution.Error = ptr(r.Err.Error())
		return "callback: " + r.Err.Error()
	}
	how := "loaded"
	if r.Isolated {
		how = "called in a helper process"
	}
	return fmt.Sprintf("callback: provider trusted, %s, %d entries", how, r.Entries)
}

func writeTablesText(w io.Writer, res *tablesResult) {
	if len(res.Lists) == 0 {
		fmt.Fprintf(w, "process %d publishes no function table list\n", res.Pid)
		return
	}
	for _, l := range res.Lists {
		if l.Error != nil {
			fmt.Fprintf(w, "list at %#x: %s\n", uint64(l.Address), *l.Error)
			continue
		}
		plural := "s"
		if len(l.Tables) == 1 {
			plural = ""
		}
		fmt.Fprintf(w, "list at %#x (generation %d): %d table%s\n", uint64(l.Address), l.Generation, len(l.Tables), plural)
		for _, t := range l.Tables {
			typ := t.Type
			if t.Growable {
				typ += " growable"
			}
			fmt.Fprintf(w, "  %-20s [%#x, %#x) base %#x", typ, uint64(t.Minimum), uint64(t.Maximum), uint64(t.Base))
			if t.Identifier != nil {
				fmt.Fprintf(w, " id %#x", uint64(*t.Identifier))
				if t.Resolution != nil && t.Resolution.Error == nil {
					fmt.Fprintf(w, " %d entries", t.Entries)
				}
			} else {
				fmt.Fprintf(w, " %d entries", t.Entries)
				if t.MaxEntries != t.Entries {
					fmt.Fprintf(w, " of %d", t.MaxEntries)
				}
			}
			if t.Provider != nil {
				fmt.Fprintf(w, " provider %s", *t.Provider)
			}
			fmt.Fprintf(w, ": %s\n", t.Status)
		}
	}
}
