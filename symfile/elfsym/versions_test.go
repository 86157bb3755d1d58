package elfsym

import (
	"slices"
	"testing"

	"github.com/fntable/fntable/symfile"
)

// TestStripVersions checks the rule of stripVersions on names as glibc's
// .symtab spells them.
func TestStripVersions(t *testing.T) {
	in := []symfile.Symbol{
		{Name: "pthread_sigmask@GLIBC_2.2.5", Addr: 0x100}, // one version at one address: stripped
		{Name: "pthread_sigmask", Addr: 0x100},             // the plain name at the same address
		{Name: "memcpy@GLIBC_2.2.5", Addr: 0x200},          // two versions at two addresses: kept
		{Name: "memcpy@@GLIBC_2.14", Addr: 0x300},
		{Name: "sched_setaffinity@GLIBC_2.3.3", Addr: 0x400}, // a version and the plain name elsewhere: kept
		{Name: "sched_setaffinity", Addr: 0x480},
		{Name: "realpath@@GLIBC_2.3", Addr: 0x500}, // two versions at one address: both stripped
		{Name: "realpath@GLIBC_2.2.5", Addr: 0x500},
		{Name: "plain", Addr: 0x600},
		{Name: "odd@", Addr: 0x700},         // not a version: kept as it is
		{Name: "@lead", Addr: 0x710},        // nor this
		{Name: "two@at@signs", Addr: 0x720}, // nor this
		{Name: "a@b c", Addr: 0x730},        // nor this
	}
	want := []string{
		"pthread_sigmask", "pthread_sigmask",
		"memcpy@GLIBC_2.2.5", "memcpy@@GLIBC_2.14",
		"sched_setaffinity@GLIBC_2.3.3", "sched_setaffinity",
		"realpath", "realpath",
		"plain", "odd@", "@lead", "two@at@signs", "a@b c",
	}
	syms := slices.Clone(in)
	stripVersions(syms)
	for i, s := range syms {
		if s.Name != want[i] {
			t.Errorf("%q at %#x became %q, want %q", in[i].Name, in[i].Addr, s.Name, want[i])
		}
		if s.Addr != in[i].Addr {
			t.Errorf("%q moved from %#x to %#x", in[i].Name, in[i].Addr, s.Addr)
		}
	}
	stripVersions(nil)
}
