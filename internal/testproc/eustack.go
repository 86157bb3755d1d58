package testproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/testenv"
)

var (
	euThread = regexp.MustCompile(`^TID (\d+):$`)
	euFrame  = regexp.MustCompile(`^#(\d+)\s+0x([0-9a-fA-F]+)(?:\s+(.*))?$`)
	euError  = regexp.MustCompile(`\btid (\d+)\b.*?: (.*)$`)
)

// EuStack runs eu-stack -n 0 -p PID (elfutils: every frame, function names
// from the symbol tables) and returns the frames of each thread by Linux
// thread ID. eu-stack gives only PC (with the meaning documented on
// [OracleFrame]) and Func; SP, Lib and Type are empty. The last frame of
// each thread has Stop set: eu-stack's error for the thread (it prints one
// when it cannot unwind further, for example "no matching address range"
// after generated code), or "outermost". eu-stack's exit status 1, which
// means that some frames are missing, is not an error.
//
// If eu-stack is missing, the test is skipped (or fails under CI).
func EuStack(t testing.TB, pid int) (map[int][]OracleFrame, error) {
	t.Helper()
	eu := testenv.Tool(t, "eu-stack")
	ctx, cancel := context.WithTimeout(context.Background(), oracleTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, eu, "-n", "0", "-p", strconv.Itoa(pid))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		return nil, fmt.Errorf("eu-stack -p %d: %v; stderr:\n%s", pid, err, tail(stderr.Bytes()))
	}
	out, err := parseEuStack(stdout.String(), stderr.String())
	if err != nil {
		return nil, fmt.Errorf("eu-stack -p %d: %v", pid, err)
	}
	if err := waitUntraced(pid, oracleTimeout); err != nil {
		return nil, fmt.Errorf("eu-stack did not detach: %v", err)
	}
	return out, nil
}

// parseEuStack parses eu-stack's standard output and error.
func parseEuStack(stdout, stderr string) (map[int][]OracleFrame, error) {
	out := map[int][]OracleFrame{}
	tid := -1
	for line := range strings.Lines(stdout) {
		line = strings.TrimRight(line, "\n")
		if m := euThread.FindStringSubmatch(line); m != nil {
			tid, _ = strconv.Atoi(m[1])
			out[tid] = nil
			continue
		}
		m := euFrame.FindStringSubmatch(line)
		if m == nil {
			continue // "PID n - process" and anything new
		}
		if tid < 0 {
			return nil, fmt.Errorf("frame before any thread: %q", line)
		}
		n, _ := strconv.Atoi(m[1])
		if n != len(out[tid]) {
			return nil, fmt.Errorf("thread %d: frame #%d out of order", tid, n)
		}
		pc, err := strconv.ParseUint(m[2], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("bad frame %q", line)
		}
		out[tid] = append(out[tid], OracleFrame{PC: pc, Func: m[3]})
	}
	stops := map[int]string{}
	for line := range strings.Lines(stderr) {
		if m := euError.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			t, _ := strconv.Atoi(m[1])
			stops[t] = m[2]
		}
	}
	for t, frames := range out {
		if len(frames) == 0 {
			continue
		}
		stop := "outermost"
		if s, ok := stops[t]; ok {
			stop = s
		}
		frames[len(frames)-1].Stop = stop
	}
	return out, nil
}
