package main

import (
	"fmt"
	"io"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/internal/procmem"
	"github.com/fntable/fntable/stackwalk"
	"github.com/fntable/fntable/target/dump"
	"github.com/fntable/fntable/target/live"
)

func newTablesCmd() *command {
	c := &command{
		name:    "tables",
		args:    "[--json] [provider flags] (PID | FILE.dmp)",
		summary: "list the dynamic function tables a running process publishes, or a minidump holds",
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
        "error": null | "..."}}...]}...]}

An argument that is not a number is a minidump. For a dump of a Linux
process written by "fntable dump", the lists are read from the dump's
memory, as they were when it was written; a callback table's entries are
those its provider gave then (status "callback: N entries from the dump";
its resolution says trusted, not loaded), or none. For a dump without
published lists (a Windows dump) the tables of its function table stream
(13) are listed as one list at address 0; a callback table's identifier
and provider are then unknown. "pid" is the dumped process's, or 0. The
provider flags are ignored: no provider is loaded for a dump.`,
	}
	c.run = func(args []string, stdout, stderr io.Writer) error {
		fs := c.flagSet()
		asJSON := fs.Bool("json", false, "print one JSON document")
		var pf providerFlags
		pf.register(fs)
		if err := c.parse(fs, args, stdout); err != nil {
			return err
		}
		pid, dumpFile, err := c.parseTarget(fs.Args())
		if err != nil {
			return err
		}
		if dumpFile != "" {
			res, err := readDumpTables(dumpFile)
			if err != nil {
				return err
			}
			return writeListing(stdout, *asJSON, res, func(w io.Writer) { writeTablesText(w, res) })
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
	if err := live.Check(pid); err != nil {
		return nil, err
	}
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
		snap, err := remote.Read(mem, m)
		if err != nil {
			res.Lists = append(res.Lists, tableList{Address: hexUint(m.Addr), Tables: []tableInfo{}, Error: ptr(err.Error())})
			continue
		}
		if p != nil {
			snap.UseProvider(pid, p)
		}
		res.Lists = append(res.Lists, listOf(snap, p != nil, false))
	}
	return res, nil
}

// listOf describes the tables of snap, resolving its callback tables if
// providers (fromDump: through the entries a dump holds).
func listOf(snap *remote.Snapshot, providers, fromDump bool) tableList {
	l := tableList{Address: hexUint(snap.MappingAddress), Generation: snap.Generation, Tables: []tableInfo{}}
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
			ti.Status = callbackStatus(snap, t, providers, &ti)
			if fromDump && ti.Resolution != nil && ti.Resolution.Error == nil {
				ti.Status = fmt.Sprintf("callback: %d entries from the dump", ti.Entries)
			}
		}
		if t.OutOfProcessCallbackDll != "" {
			ti.Provider = ptr(t.OutOfProcessCallbackDll)
		}
		l.Tables = append(l.Tables, ti)
	}
	return l
}

// readDumpTables lists the tables of the minidump name: its published
// lists, read from its memory, or the tables of its function table
// stream.
func readDumpTables(name string) (*tablesResult, error) {
	d, err := dump.Open(name)
	if err != nil {
		return nil, fileError(name, err)
	}
	defer d.Close()
	if err := stackwalk.CheckArch(d); err != nil {
		return nil, fileError(name, err)
	}
	res := &tablesResult{Pid: d.ProcessID(), Lists: []tableList{}}
	lists, lerr := d.PublishedLists()
	for _, sn := range lists {
		res.Lists = append(res.Lists, listOf(sn, true, true))
	}
	if lerr != nil {
		res.Lists = append(res.Lists, tableList{Tables: []tableInfo{}, Error: ptr(lerr.Error())})
	}
	if len(lists) > 0 {
		return res, nil
	}
	ft, err := d.File().FunctionTables()
	if ft == nil {
		if err != nil {
			return nil, err
		}
		return res, nil
	}
	l := tableList{Tables: []tableInfo{}}
	if err != nil {
		l.Error = ptr(err.Error())
	}
	for i := range ft.Tables {
		t := &ft.Tables[i]
		n := t.NativeTable
		ti := tableInfo{
			Type:    functable.Type(n.Type).String(),
			Minimum: hexUint(t.Descriptor.MinimumAddress), Maximum: hexUint(t.Descriptor.MaximumAddress), Base: hexUint(t.Descriptor.BaseAddress),
			Entries: t.Descriptor.EntryCount, MaxEntries: t.Descriptor.EntryCount, Status: "ok",
		}
		if functable.Type(n.Type) == functable.RF_CALLBACK {
			ti.Identifier = ptr(hexUint(n.FunctionTable))
			ti.Status = fmt.Sprintf("callback: %d entries from the dump", t.Descriptor.EntryCount)
		}
		l.Tables = append(l.Tables, ti)
	}
	res.Lists = append(res.Lists, l)
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
		fmt.Fprintf(w, "list at %#x (generation %d): %s\n", uint64(l.Address), l.Generation, count(len(l.Tables), "table", "tables"))
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
