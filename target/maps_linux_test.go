package target

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/internal/testproc"
)

// selfMapC maps its own executable's first page and, elsewhere, its
// second page, as data, and announces where they are, where main is, and
// where libc's sleep is.
const selfMapC = `
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void) {
	int fd = open("/proc/self/exe", O_RDONLY);
	if (fd < 0) { perror("open"); return 1; }
	void *head = mmap(0, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
	void *view = mmap(0, 4096, PROT_READ, MAP_PRIVATE, fd, 4096);
	if (head == MAP_FAILED || view == MAP_FAILED) { perror("mmap"); return 1; }
	printf("fn main %p\nfn sleep %p\nfn head %p\nfn view %p\nready %d\n",
		(void *)main, (void *)sleep, head, view, (int)getpid());
	fflush(stdout);
	for (;;) pause();
}
`

// TestModulesFromMapsSelfMap reads the modules of a process that maps
// its own file twice more: the executable's module must end where its
// segments end, and not swallow libc.
func TestModulesFromMapsSelfMap(t *testing.T) {
	gcc := testenv.Tool(t, "gcc")
	dir := t.TempDir()
	src := filepath.Join(dir, "selfmap.c")
	bin := filepath.Join(dir, "selfmap")
	if err := os.WriteFile(src, []byte(selfMapC), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-g", "-O2", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	p := testproc.Start(t, bin)
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	mods, err := ModulesFromMaps(bytes.NewReader(maps))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("maps:\n%s", maps)
		}
	}()
	at := func(addr uint64) *Module {
		for i := range mods {
			if addr-mods[i].Base < mods[i].Size {
				return &mods[i]
			}
		}
		return nil
	}
	for i := 1; i < len(mods); i++ {
		if mods[i-1].End() > mods[i].Base {
			t.Errorf("modules %s [%#x, %#x) and %s [%#x, %#x) overlap",
				mods[i-1].Name, mods[i-1].Base, mods[i-1].End(), mods[i].Name, mods[i].Base, mods[i].End())
		}
	}
	exe := at(p.Funcs["main"])
	if exe == nil || exe.Name != "selfmap" {
		t.Fatalf("main at %#x is in module %+v, want selfmap", p.Funcs["main"], exe)
	}
	if exe.Size > 1<<20 {
		t.Errorf("module selfmap [%#x, %#x) is %#x bytes", exe.Base, exe.End(), exe.Size)
	}
	if libc := at(p.Funcs["sleep"]); libc == nil || !strings.HasPrefix(libc.Name, "libc") {
		t.Errorf("sleep at %#x is in module %+v, want libc", p.Funcs["sleep"], libc)
	}
	if head := at(p.Funcs["head"]); head == nil || head == exe || head.Name != "selfmap" ||
		head.Base != p.Funcs["head"] || head.Size != 0x1000 {
		t.Errorf("the executable's first page mapped again at %#x is in module %+v, want a module of its own", p.Funcs["head"], head)
	}
	if view := at(p.Funcs["view"]); view != nil {
		t.Errorf("the executable's second page mapped at %#x is in module %+v, want none", p.Funcs["view"], view)
	}
}
