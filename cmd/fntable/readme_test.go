package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/testenv"
)

// readmeExcluded lists the README examples TestREADME does not run, by
// the start of their command line, with the reason.
var readmeExcluded = map[string]string{
	"fntable demo":      "starts the demo target; TestDemo runs it, and its PIDs and addresses differ on every run",
	"fntable stack ":    "walks a running process or the dump of one, whose PIDs and addresses differ on every run",
	"fntable tables ":   "reads the tables of a running process, whose PID and addresses differ on every run",
	"fntable dump ":     "stops a running process and needs a provider library installed in /opt/jit",
	"fntable providers": "checks a provider library installed in /opt/jit",
}

// readmeExample is one "$ command" line of a shell session in README.md
// and the output shown after it.
type readmeExample struct {
	line    int    // line number of the command in README.md
	command string // without "$ "
	output  []string
}

// readmeExamples returns the shell sessions of README.md's fenced blocks:
// each line that starts with "$ " is a command, and the lines up to the
// next command or the end of the block are its output.
func readmeExamples(readme string) []readmeExample {
	var ex []readmeExample
	cur := -1 // index in ex of the command whose output is being read
	for i, l := range strings.Split(readme, "\n") {
		switch {
		case strings.HasPrefix(l, "```"):
			cur = -1
		case strings.HasPrefix(l, "$ "):
			ex = append(ex, readmeExample{line: i + 1, command: strings.TrimPrefix(l, "$ ")})
			cur = len(ex) - 1
		case cur >= 0:
			ex[cur].output = append(ex[cur].output, l)
		}
	}
	return ex
}

// readmeOutput returns the regular expression an example's shown output
// stands for: a line "..." is any number of lines, "..." within a line
// any text; everything else is literal.
func readmeOutput(shown []string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`\A`)
	for _, l := range shown {
		if strings.TrimSpace(l) == "..." {
			b.WriteString(`(?:.*\n)*`)
			continue
		}
		parts := strings.Split(l, "...")
		for i, p := range parts {
			if i > 0 {
				b.WriteString(`.*`)
			}
			b.WriteString(regexp.QuoteMeta(p))
		}
		b.WriteString(`\n`)
	}
	b.WriteString(`\z`)
	return regexp.MustCompile(b.String())
}

// TestREADME runs every shell example of README.md from the repository
// root, as a user pastes it, with this test binary as fntable on PATH,
// and compares its output with the README's (see readmeOutput for the
// placeholders). The examples in readmeExcluded are only checked to be
// one line.
func TestREADME(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	examples := readmeExamples(string(readme))
	if len(examples) < 5 {
		t.Fatalf("found %d examples in README.md", len(examples))
	}
	if _, err := os.Stat(filepath.Join(root, "..", "shared", "testdata", "pe")); err != nil {
		testenv.Unavailable(t, "needs ../shared/testdata beside the repository: %v", err)
	}
	bash := testenv.Tool(t, "bash")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(bin, "fntable")); err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, ex := range examples {
		if strings.HasSuffix(ex.command, `\`) || strings.Count(ex.command, "'")%2 != 0 {
			t.Errorf("README.md:%d: the command continues on the next line: %s", ex.line, ex.command)
			continue
		}
		if strings.Contains(ex.command, "<") || strings.Contains(ex.command, ">") {
			t.Errorf("README.md:%d: the command has a placeholder or a redirection: %s", ex.line, ex.command)
		}
		excluded := false
		for prefix := range readmeExcluded {
			excluded = excluded || strings.HasPrefix(ex.command, prefix)
		}
		if excluded {
			continue
		}
		ran++
		t.Run(fmt.Sprintf("README.md:%d", ex.line), func(t *testing.T) {
			cmd := exec.Command(bash, "-c", ex.command)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), readmeCLIEnv+"=1")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Errorf("README.md:%d: %s: %v\nstderr:\n%s", ex.line, ex.command, err, stderr.String())
			}
			if !readmeOutput(ex.output).Match(stdout.Bytes()) {
				t.Errorf("README.md:%d: %s\noutput:\n%s\nthe README shows:\n%s", ex.line, ex.command, stdout.String(), strings.Join(ex.output, "\n"))
			}
		})
	}
	if ran == 0 {
		t.Error("no README example ran")
	}
}

// TestREADMEOutputPattern checks the placeholders of readmeOutput.
func TestREADMEOutputPattern(t *testing.T) {
	for _, c := range []struct {
		shown []string
		out   string
		match bool
	}{
		{[]string{"a", "b"}, "a\nb\n", true},
		{[]string{"a", "b"}, "a\nb\nc\n", false},
		{[]string{"a", "..."}, "a\nb\nc\n", true},
		{[]string{"a", "...", "c"}, "a\nc\n", true},
		{[]string{"a", "...", "c"}, "a\nb\nx\nc\n", true},
		{[]string{"a,...,d"}, "a,b,c,d\n", true},
		{[]string{"a,...,d"}, "a,b,c,e\n", false},
		{[]string{"a.b"}, "axb\n", false},
	} {
		if got := readmeOutput(c.shown).MatchString(c.out); got != c.match {
			t.Errorf("%q against %q: %v, want %v", c.shown, c.out, got, c.match)
		}
	}
}

// readmeCLIEnv, when set, makes the test binary run as fntable (see
// TestMain), so that TestREADME's examples run the code under test.
const readmeCLIEnv = "FNTABLE_TEST_RUN_AS_CLI"
