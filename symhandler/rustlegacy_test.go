package symhandler

import "testing"

func TestDemangleRustLegacy(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"_ZN3std2rt10lang_start17hf21f289f39ea3723E", "std::rt::lang_start"},
		{"_ZN3std3sys9backtrace28__rust_begin_short_backtrace17hfa891d39abf08321E", "std::sys::backtrace::__rust_begin_short_backtrace"},
		{"_ZN63_$LT$I$u20$as$u20$core..iter..traits..collect..IntoIterator$GT$9into_iter17hce1048b466159900E", "<I as core::iter::traits::collect::IntoIterator>::into_iter"},
		{"_ZN4core3ptr13drop_in_place17h0123456789abcdefE.llvm.42", "core::ptr::drop_in_place"},
		{"_ZN5alloc3vec16Vec$LT$T$C$A$GT$7reserve17h8094259cd05e7d72E", "alloc::vec::Vec<T,A>::reserve"},
		{"_ZN1a28_$u7b$$u7b$closure$u7d$$u7d$17hc58257df693f9256E", "a::{{closure}}"},
	} {
		got, ok := demangleRustLegacy(c.in)
		if !ok || got != c.want {
			t.Errorf("demangleRustLegacy(%q) = %q, %v; want %q", c.in, got, ok, c.want)
		}
	}
	for _, in := range []string{
		"_ZN3foo3barEv",              // C++
		"_ZN3foo3barE",               // no hash
		"_ZN3foo17h0123456789abcdeE", // short hash
		"_ZN99fooE", "_ZN", "_ZN3foo", "_ZN1a$17h0123456789abcdefE",
		"_ZN2$u17h0123456789abcdefE", "_ZN5$uzz$17h0123456789abcdefE",
	} {
		if got, ok := demangleRustLegacy(in); ok {
			t.Errorf("demangleRustLegacy(%q) = %q, want not legacy Rust", in, got)
		}
	}
}

func TestDemangleGo(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"gopkg.in/yaml%2ev3.Marshal", "gopkg.in/yaml.v3.Marshal"},
		{"example.com/a%2eb/c%2ed.(*T).M", "example.com/a.b/c.d.(*T).M"},
		{"main.main", "main.main"},
		{"bad%zzescape%2", "bad%zzescape%2"},
		{"x%25y", "x%y"},
	} {
		if got := demangleName(c.in); got != c.want {
			t.Errorf("demangleName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzDemangleName: symbol names come from files of any origin; demangling
// never panics and never hangs.
func FuzzDemangleName(f *testing.F) {
	for _, s := range []string{
		"_ZN3std2rt10lang_start17hf21f289f39ea3723E",
		"_ZN63_$LT$I$u20$as$u20$core..iter..traits..collect..IntoIterator$GT$9into_iter17hce1048b466159900E",
		"_RNvCs15kBYyAo9fc_7mycrate7example",
		"_ZNSt6vectorIiSaIiEE9push_backERKi",
		"_ZN3foo3barEv", "main", "_Z", "_R",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		demangleName(s)
		demangleRustLegacy(s)
	})
}
