package symsrv

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/symfile"
)

// peImage is a PE file from ../shared/testdata/pe with the identity that
// llvm-readobj reads from its headers.
type peImage struct {
	name, path    string
	timeDateStamp uint32
	sizeOfImage   uint32
	raw           []byte
}

var (
	readobjStamp = regexp.MustCompile(`TimeDateStamp: .*\(0x([0-9A-Fa-f]+)\)`)
	readobjSize  = regexp.MustCompile(`SizeOfImage: (\d+)`)
)

func sharedImages(t *testing.T) []peImage {
	t.Helper()
	readobj := needCmd(t, "llvm-readobj", "llvm")
	var out []peImage
	for _, name := range []string{
		"go-gcc-amd64-mingw-exec",
		"symbolic-CrashWithException.exe",
		"symbolic-hello-dwarf.exe",
		"lldb-pecallframeinfo.exe",
		"llvm-win64-unwindv2.exe",
		"symbolic-cfi_chained_loop.exe",
	} {
		path := winetest.Testdata(t, "pe/"+name)
		hdr := run(t, readobj, "--file-headers", path)
		ms, mz := readobjStamp.FindStringSubmatch(hdr), readobjSize.FindStringSubmatch(hdr)
		if ms == nil || mz == nil {
			t.Fatalf("llvm-readobj --file-headers %s: no TimeDateStamp or SizeOfImage:\n%s", name, hdr)
		}
		stamp, err1 := strconv.ParseUint(ms[1], 16, 32)
		size, err2 := strconv.ParseUint(mz[1], 10, 32)
		raw, err3 := os.ReadFile(path)
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatal(err)
		}
		out = append(out, peImage{name, path, uint32(stamp), uint32(size), raw})
	}
	return out
}

// store is a symbol store directory whose entries are symbolic links to
// files elsewhere, so that the shared test data is read in place, served
// by net/http's FileServer as a static symbol server is.
type store struct {
	dir      string
	url      string
	requests atomic.Int64
}

func newStore(t *testing.T) *store {
	t.Helper()
	s := &store{dir: t.TempDir()}
	fs := http.FileServer(http.Dir(s.dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// add links NAME/INDEX/NAME to target.
func (s *store) add(t *testing.T, name, index, target string) {
	t.Helper()
	p := filepath.Join(s.dir, name, index, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func TestFetchImage(t *testing.T) {
	images := sharedImages(t)
	st := newStore(t)
	for _, im := range images {
		st.add(t, im.name, fmt.Sprintf("%08X%x", im.timeDateStamp, im.sizeOfImage), im.path)
	}
	// A wrong file under a right index: another image's bytes.
	wrong := images[0]
	wrong.name = "wrong.exe"
	st.add(t, wrong.name, fmt.Sprintf("%08X%x", wrong.timeDateStamp, wrong.sizeOfImage), images[1].path)

	cache := t.TempDir()
	els, err := ParsePath("srv*" + cache + "*" + st.url)
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{Elements: els, Retries: -1}
	ctx := context.Background()
	want := map[string][]byte{}
	for _, im := range images {
		t.Run(im.name, func(t *testing.T) {
			var pl progressLog
			// Ask with a Windows path: only the last element counts.
			path, err := c.FetchImage(ctx, `C:\Windows\System32\`+im.name, im.timeDateStamp, im.sizeOfImage, pl.fn)
			if err != nil {
				t.Fatal(err)
			}
			rel := fmt.Sprintf("%s/%08X%x/%s", im.name, im.timeDateStamp, im.sizeOfImage, im.name)
			if path != filepath.Join(cache, filepath.FromSlash(rel)) {
				t.Errorf("path %s, want CACHE/%s", path, rel)
			}
			want[rel] = im.raw
			if n := len(pl.calls); n == 0 || pl.calls[n-1] != [2]int64{int64(len(im.raw)), int64(len(im.raw))} {
				t.Errorf("progress %v does not end with the size %d", pl.calls, len(im.raw))
			}
		})
	}
	checkCacheOnly(t, cache, want)

	// Again: from the cache, without a request.
	before := st.requests.Load()
	for _, im := range images {
		if _, err := c.FetchImage(ctx, im.name, im.timeDateStamp, im.sizeOfImage, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.requests.Load() - before; n != 0 {
		t.Errorf("%d requests for cached images", n)
	}

	t.Run("wrong file", func(t *testing.T) {
		_, err := c.FetchImage(ctx, wrong.name, wrong.timeDateStamp, wrong.sizeOfImage, nil)
		var me *MismatchError
		wantID := fmt.Sprintf("%08X%x", wrong.timeDateStamp, wrong.sizeOfImage)
		gotID := fmt.Sprintf("%08X%x", images[1].timeDateStamp, images[1].sizeOfImage)
		if !errors.As(err, &me) || me.Want != wantID || me.Got != gotID || !strings.HasPrefix(me.Source, st.url) {
			t.Fatalf("error %v, want a *MismatchError from %s to %s", err, wantID, gotID)
		}
		checkCacheOnly(t, cache, want)
	})

	t.Run("not found", func(t *testing.T) {
		im := images[0]
		_, err := c.FetchImage(ctx, im.name, im.timeDateStamp+1, im.sizeOfImage, nil)
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("error %v, want ErrNotFound", err)
		}
		_, err = c.FetchImage(ctx, im.name, im.timeDateStamp, im.sizeOfImage+0x1000, nil)
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("error %v, want ErrNotFound", err)
		}
	})

	t.Run("plain directory and directory store", func(t *testing.T) {
		im := images[1]
		plain := t.TempDir()
		if err := os.Symlink(im.path, filepath.Join(plain, im.name)); err != nil {
			t.Fatal(err)
		}
		// A plain directory with a file of the right name but another
		// identity is passed over for the store after it.
		other := t.TempDir()
		if err := os.Symlink(images[0].path, filepath.Join(other, im.name)); err != nil {
			t.Fatal(err)
		}
		els, err := ParsePath(other + ";srv*" + st.dir + ";" + plain)
		if err != nil {
			t.Fatal(err)
		}
		c := &Client{Elements: els}
		path, err := c.FetchImage(ctx, im.name, im.timeDateStamp, im.sizeOfImage, nil)
		wantPath := filepath.Join(st.dir, im.name, fmt.Sprintf("%08X%x", im.timeDateStamp, im.sizeOfImage), im.name)
		if err != nil || path != wantPath {
			t.Fatalf("directory store in place: %s, %v; want %s", path, err, wantPath)
		}
		c.Elements = els[2:]
		if path, err := c.FetchImage(ctx, im.name, im.timeDateStamp, im.sizeOfImage, nil); err != nil || path != filepath.Join(plain, im.name) {
			t.Fatalf("plain directory: %s, %v", path, err)
		}
		c.Elements = els[:1]
		if _, err := c.FetchImage(ctx, im.name, im.timeDateStamp, im.sizeOfImage, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("wrong file in a plain directory: %v, want ErrNotFound", err)
		}
		// A directory store with a downstream store is copied into it.
		down := t.TempDir()
		c.Elements = []Element{{Type: ElemSymbolServer, Path: st.dir, Downstream: []string{down}}}
		path, err = c.FetchImage(ctx, im.name, im.timeDateStamp, im.sizeOfImage, nil)
		if err != nil || !strings.HasPrefix(path, down) {
			t.Fatalf("directory store with a downstream store: %s, %v", path, err)
		}
		checkCacheOnly(t, down, map[string][]byte{fmt.Sprintf("%s/%08X%x/%s", im.name, im.timeDateStamp, im.sizeOfImage, im.name): im.raw})
	})
}

var (
	debugGUID = regexp.MustCompile(`PDBGUID: \(([0-9A-F ]+)\)`)
	debugAge  = regexp.MustCompile(`PDBAge: (\d+)`)
	debugPath = regexp.MustCompile(`PDBFileName: (.*)`)
)

// TestFetchPDB fetches the PDB of symbolic-CrashWithException.exe (an
// MSVC image) from a store. The real PDB is not at hand, so the test has
// llvm-pdbutil yaml2pdb write one with the identity of the image's RSDS
// record, as llvm-readobj reads it.
func TestFetchPDB(t *testing.T) {
	readobj := needCmd(t, "llvm-readobj", "llvm")
	pdbutil := needCmd(t, "llvm-pdbutil", "llvm")
	exe := winetest.Testdata(t, "pe/symbolic-CrashWithException.exe")
	dd := run(t, readobj, "--coff-debug-directory", exe)
	mg, ma, mp := debugGUID.FindStringSubmatch(dd), debugAge.FindStringSubmatch(dd), debugPath.FindStringSubmatch(dd)
	if mg == nil || ma == nil || mp == nil {
		t.Fatalf("llvm-readobj --coff-debug-directory: no PDB info:\n%s", dd)
	}
	var cv symfile.CodeView
	g, err := hex.DecodeString(strings.ReplaceAll(mg[1], " ", ""))
	if err != nil || len(g) != 16 {
		t.Fatalf("guid %q: %v", mg[1], err)
	}
	copy(cv.GUID[:], g)
	age, err := strconv.ParseUint(ma[1], 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	cv.Age = uint32(age)
	cv.Path = strings.TrimSpace(mp[1])

	// The GUID as the YAML writes it: Data1-Data2-Data3 as numbers (stored
	// little-endian), then Data4.
	guidText := fmt.Sprintf("{%02X%02X%02X%02X-%02X%02X-%02X%02X-%X-%X}",
		g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8:10], g[10:16])
	dir := t.TempDir()
	good := filepath.Join(dir, "good.pdb")
	writeYAMLPDB(t, pdbutil, good, 4096, int(cv.Age)+2, int(cv.Age), 0x5C9E0959, guidText)
	other := filepath.Join(dir, "other.pdb")
	writeYAMLPDB(t, pdbutil, other, 4096, int(cv.Age), int(cv.Age), 0x5C9E0959, "{00000000-1111-2222-3333-444444444444}")
	// The store index, from LLVM's printed GUID: what a symbol server has.
	llvm := llvmPDBSummary(t, pdbutil, good)
	index := strings.NewReplacer("{", "", "}", "", "-", "").Replace(llvm.guid) + strings.ToUpper(strconv.FormatUint(uint64(llvm.dbiAge), 16))
	// The PDB that LLVM wrote holds the image's GUID bytes, and LLVM's
	// printed GUID gives the index this package computes from the record.
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := ReadPDBInfo(bytes.NewReader(raw), int64(len(raw))); err != nil || info.GUID != cv.GUID {
		t.Fatalf("the PDB written for % X holds %+v, %v", cv.GUID, info, err)
	}
	if id := pdbID(cv.GUID, cv.Age); id != index {
		t.Fatalf("index %s, LLVM prints %s", id, index)
	}

	st := newStore(t)
	st.add(t, "CrashWithException.pdb", index, good)
	wrongCV := cv
	wrongCV.Age++ // another age: served the good PDB under the wrong index
	st.add(t, "CrashWithException.pdb", pdbID(wrongCV.GUID, wrongCV.Age), good)
	otherCV := cv
	otherCV.Path = "other.pdb"
	st.add(t, "other.pdb", index, other)

	cache := t.TempDir()
	c := &Client{Elements: []Element{{Type: ElemSymbolServer, Path: st.url}}, CacheDir: cache, Retries: -1}
	ctx := context.Background()
	path, err := c.FetchPDB(ctx, cv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(cache, "CrashWithException.pdb", index, "CrashWithException.pdb"); path != want {
		t.Errorf("path %s, want %s", path, want)
	}
	for _, bad := range []symfile.CodeView{wrongCV, otherCV} {
		_, err := c.FetchPDB(ctx, bad, nil)
		var me *MismatchError
		if !errors.As(err, &me) || me.Got == "" || me.Got == me.Want {
			t.Errorf("%s %s: error %v, want a *MismatchError", bad.Path, pdbID(bad.GUID, bad.Age), err)
		}
	}
	checkCacheOnly(t, cache, map[string][]byte{"CrashWithException.pdb/" + index + "/CrashWithException.pdb": raw})

	// A CodeView path that could leave the cache is refused.
	for _, p := range []string{"", `C:\x\..`, "a/.", "bad\x00.pdb", "c:evil.pdb", strings.Repeat("a", 300)} {
		bad := cv
		bad.Path = p
		if _, err := c.FetchPDB(ctx, bad, nil); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("path %q: error %v, want a refusal", p, err)
		}
	}
}

// TestFetchDebuginfoFromStore fetches ELF debug files from a symbol store
// under their SSQP keys, the fixture's files served by net/http's
// FileServer.
func TestFetchDebuginfoFromStore(t *testing.T) {
	fx := debuginfodFixture(t)
	st := newStore(t)
	st.add(t, "_.debug", "elf-buildid-sym-"+fx.splitDebug.id, fx.splitDebug.path)
	// A wrong file under the small program's key.
	st.add(t, "_.debug", "elf-buildid-sym-"+fx.small.id, fx.big.path)
	cache := t.TempDir()
	els, err := ParsePath("srv*" + cache + "*" + st.url)
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{Elements: els, Retries: -1}
	ctx := context.Background()
	path, err := c.FetchDebuginfo(ctx, fx.splitExe.buildID(t), KindDebuginfo, nil)
	rel := "_.debug/elf-buildid-sym-" + fx.splitDebug.id + "/_.debug"
	if err != nil || path != filepath.Join(cache, filepath.FromSlash(rel)) {
		t.Fatalf("debuginfo from the store: %s, %v", path, err)
	}
	_, err = c.FetchDebuginfo(ctx, fx.small.buildID(t), KindDebuginfo, nil)
	var me *MismatchError
	if !errors.As(err, &me) || me.Got != fx.big.id {
		t.Errorf("wrong file: %v, want a *MismatchError", err)
	}
	// Executables are indexed by name in stores: not asked for.
	before := st.requests.Load()
	if _, err := c.FetchDebuginfo(ctx, fx.splitExe.buildID(t), KindExecutable, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("executable: %v, want ErrNotFound", err)
	}
	if st.requests.Load() != before {
		t.Error("a store was asked for an executable by build ID")
	}
	checkCacheOnly(t, cache, map[string][]byte{rel: fx.splitDebug.raw})

	// A build ID shorter than 20 bytes is padded with zeros in the key.
	q := &request{elf: true, id: "0123456789abcdef", name: KindDebuginfo.String()}
	if got, want := q.storeRel(), "_.debug/elf-buildid-sym-0123456789abcdef000000000000000000000000/_.debug"; got != want {
		t.Errorf("SSQP key %s, want %s", got, want)
	}
}
