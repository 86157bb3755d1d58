package dump

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/minidump"
	"github.com/fntable/fntable/unwindinfo"
)

// ProcessID returns the id of the dumped process: the Pid line of the
// dump's /proc/PID/status stream (Breakpad's MD_LINUX_PROC_STATUS), else
// the MiscInfoStream's ProcessId, else 0. (It is not named Pid: a target
// with a Pid method is a live process to the stack walker.)
func (d *Dump) ProcessID() int {
	if data, ok := d.stream(minidump.BreakpadLinuxProcStatusStream); ok {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "Pid:"); ok {
				if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
					return n
				}
			}
		}
	}
	if mi, _ := d.f.MiscInfo(); mi != nil && mi.Flags1&minidump.MINIDUMP_MISC1_PROCESS_ID != 0 {
		return int(mi.ProcessId)
	}
	return 0
}

// stream returns the data of the dump's stream of type t.
func (d *Dump) stream(t minidump.StreamType) ([]byte, bool) {
	dir, ok := d.f.Stream(t)
	if !ok {
		return nil, false
	}
	data, err := d.f.StreamData(dir)
	return data, err == nil
}

// PublishedLists reads the function table lists the dumped process
// published, from the dump's memory: the lists its maps stream (Breakpad's
// MD_LINUX_MAPS) shows, as functable/remote reads them from a live
// process. A callback table's entries are those the dump's
// FunctionTableStream holds for it, which its provider gave when the dump
// was written: [remote.Snapshot.Resolve] returns them, with Trusted set
// (a capture writes entries only from a trusted provider) and Loaded
// clear (no provider is loaded now). It returns nil and no error for a
// dump without a maps stream (a Windows dump) or without lists; a list
// the dump does not hold is returned as an error, with the lists read.
func (d *Dump) PublishedLists() ([]*remote.Snapshot, error) {
	data, ok := d.stream(minidump.BreakpadLinuxMapsStream)
	if !ok {
		return nil, nil
	}
	maps, err := remote.ParseMaps(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	ft, _ := d.f.FunctionTables()
	p := &streamProvider{ft: ft}
	var out []*remote.Snapshot
	var firstErr error
	for _, m := range maps {
		sn, err := remote.Read(d, m)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("function table list at %#x: %w", m.Addr, err)
			}
			continue
		}
		sn.UseProvider(d.ProcessID(), p)
		out = append(out, sn)
	}
	return out, firstErr
}

// streamProvider resolves callback tables from the dump's
// FunctionTableStream.
type streamProvider struct {
	ft *minidump.FunctionTables
}

func (p *streamProvider) ResolveCallbackTable(_ int, t *remote.Table) ([]unwindinfo.RuntimeFunction, remote.Resolution) {
	res := remote.Resolution{Provider: t.OutOfProcessCallbackDll}
	if p.ft != nil {
		for i := range p.ft.Tables {
			dt := &p.ft.Tables[i]
			n := dt.NativeTable
			if !dt.NativeOK || functable.Type(n.Type) != functable.RF_CALLBACK || n.FunctionTable != t.FunctionTable ||
				dt.Descriptor.MinimumAddress != t.MinimumAddress || dt.Descriptor.MaximumAddress != t.MaximumAddress {
				continue
			}
			if len(dt.Entries) == 0 {
				break
			}
			res.Trusted, res.Entries = true, len(dt.Entries)
			return dt.Entries, res
		}
	}
	res.Err = fmt.Errorf("callback table %#x: the dump holds no entries for it (its provider was not trusted or not asked when the dump was written)", t.FunctionTable)
	return nil, res
}
