//go:build linux

package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fntable/fntable/internal/demotarget"
	"github.com/fntable/fntable/provider"
)

// TestDemo runs the demo: it walks the real JIT target from outside and
// checks every JIT frame against the chains the target built (it fails
// otherwise). The test checks the narrative, that each table kind
// unwound frames, and the JSON form.
func TestDemo(t *testing.T) {
	stackNeedLive(t)
	status, out, errOut := fntable("demo")
	if status != 0 {
		t.Fatalf("demo: status %d: %s\n%s", status, errOut, out)
	}
	for _, want := range []string{"2. Started the target", "5. Checked:", "{static table}", "{growable table}", "{callback table}"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`all (\d+) JIT frames of the (\d+) JIT threads`).FindStringSubmatch(out)
	if m == nil || m[1] == "0" || m[2] != "4" {
		t.Errorf("demo summary %q: want JIT frames on 4 JIT threads:\n%s", m, out)
	}

	status, out, errOut = fntable("demo", "--json", "--seed", "7", "--isolate-providers")
	if status != 0 {
		t.Fatalf("demo --json: status %d: %s\n%s", status, errOut, out)
	}
	var doc struct {
		Pid     int `json:"pid"`
		Threads []struct {
			Frames []struct {
				Symbol *string `json:"symbol"`
				Table  *struct {
					Type string `json:"type"`
				} `json:"table"`
			} `json:"frames"`
		} `json:"threads"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("demo --json: %v\n%s", err, out)
	}
	types := map[string]int{}
	for _, th := range doc.Threads {
		for _, f := range th.Frames {
			if f.Table != nil {
				types[f.Table.Type]++
			}
		}
	}
	if types["RF_SORTED"] == 0 || types["RF_CALLBACK"] == 0 {
		t.Errorf("demo --json: frames per table type %v, want static (RF_SORTED) and callback frames", types)
	}
}

// TestDemoTargetChurn walks the demo target again and again while it adds
// and deletes other tables and creates, grows and deletes a growable one:
// every walk must find exactly the chains the target built (no torn read
// of the published list, no frame from a table that came or went).
func TestDemoTargetChurn(t *testing.T) {
	stackNeedLive(t)
	lib, dir, err := demoProvider()
	if err != nil {
		t.Skipf("no example provider: %v", err)
	}
	p, err := demotarget.Start(context.Background(), demotarget.Options{Provider: lib, Churn: true, Seed: 3, Stderr: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	trust, err := demoTrust(dir, []string{lib})
	if err != nil {
		t.Fatal(err)
	}
	r := &provider.Resolver{Trust: trust}
	walks := 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) || walks < 10; walks++ {
		res, err := walkProcess(stackConfig{pid: p.Pid, maxFrames: 1024, provider: r}, io.Discard)
		if err != nil {
			t.Fatalf("walk %d: %v", walks, err)
		}
		if _, err := checkDemo(&p.Report, res, false); err != nil {
			var b strings.Builder
			writeStacksText(&b, demoThreads(&p.Report, res))
			if tr, err := readTables(p.Pid, r); err == nil {
				writeTablesText(&b, tr)
			}
			t.Fatalf("walk %d: %v\n%s", walks, err, b.String())
		}
	}
	st, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.ChurnErr != "" || st.ChurnCycles == 0 {
		t.Fatalf("churn: %+v", st)
	}
	t.Logf("%d walks, each right, during %d churn cycles", walks, st.ChurnCycles)
}

// TestDemoNoCompiler runs the demo with no C compiler on PATH: the target
// runs without its callback table, the demo says so, the walks through
// the other tables are checked, and those that reach the unregistered
// callback part stop there.
func TestDemoNoCompiler(t *testing.T) {
	stackNeedLive(t)
	t.Setenv("PATH", t.TempDir())
	status, out, errOut := fntable("demo")
	if status != 0 {
		t.Fatalf("demo: status %d: %s\n%s", status, errOut, out)
	}
	for _, want := range []string{"No C compiler on PATH", "{static table}", "{growable table}", "up to the first frame of the unregistered callback part"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "{callback table}") {
		t.Errorf("a frame in a callback table without a provider:\n%s", out)
	}
}

// TestVerifyPid verifies the demo target's dynamic function tables from
// outside: every entry of its static, growable and callback tables (the
// last through the example provider), code and unwind information read
// from the process. jitgen's code and unwind information agree, so no
// problem is expected; without trust, the callback table is skipped with
// a message.
func TestVerifyPid(t *testing.T) {
	stackNeedLive(t)
	lib, dir, err := demoProvider()
	if err != nil {
		t.Skipf("no example provider: %v", err)
	}
	if _, err := demoTrust(dir, nil); err != nil {
		t.Fatal(err)
	}
	p, err := demotarget.Start(context.Background(), demotarget.Options{Provider: lib, Stderr: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	want := 0
	for _, tb := range p.Report.Tables {
		want += tb.EntryCount
	}
	list := dir + "/known-function-table-dlls"
	pid := strconv.Itoa(p.Pid)
	status, out, errOut := fntable("verify", "--json", "--trust-list", list, "--trust-provider", lib, "--pid", pid)
	var rep struct {
		Functions int   `json:"functions"`
		Problems  []any `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || status != 0 {
		t.Fatalf("verify --pid: status %d, %v\n%s\n%s", status, err, out, errOut)
	}
	if rep.Functions != want || len(rep.Problems) != 0 {
		t.Errorf("verify --pid: %d functions, %d problems; want %d functions and none:\n%s", rep.Functions, len(rep.Problems), want, out)
	}
	t.Logf("verify --pid %d: %d functions, no problem", p.Pid, rep.Functions)
	status, out, errOut = fntable("verify", "--json", "--trust-list", list, "--pid", pid)
	if err := json.Unmarshal([]byte(out), &rep); err != nil || status != 0 || !strings.Contains(errOut, "not verified") || rep.Functions >= want {
		t.Errorf("verify --pid without trust: status %d, %d functions, stderr %q", status, rep.Functions, errOut)
	}
}
