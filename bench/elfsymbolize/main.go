// Command elfsymbolize symbolizes the addresses read from standard input,
// one hexadecimal address a line, with package elfsym, and prints one line
// of JSON per address in the shape of llvm-symbolizer --output-style=JSON
// --inlines --no-demangle. With -q it prints nothing and reports timings
// on standard error: the load time (open plus the first address) and the
// throughput over the other addresses. bench/symbolize.sh compares it with
// llvm-symbolizer and eu-addr2line.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/fntable/fntable/symfile"
	"github.com/fntable/fntable/symfile/elfsym"
)

type frame struct {
	Column       int
	FileName     string
	FunctionName string
	Line         int
}

type result struct {
	Address string
	Symbol  []frame
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("elfsymbolize: ")
	obj := flag.String("obj", "", "the ELF file")
	quiet := flag.Bool("q", false, "print timings only")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *obj == "" {
		flag.Usage()
		os.Exit(2)
	}
	var addrs []uint64
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		a, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
		if err != nil {
			log.Fatalf("bad address %q", s)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return
	}
	if *cpuprofile != "" {
		pf, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	f, err := elfsym.Open(*obj, symfile.Options{Lines: true})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	var frames []symfile.Frame
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	var loaded time.Time
	for i, a := range addrs {
		frames, err = f.Frames(frames[:0], a)
		if err != nil {
			log.Printf("%#x: %v", a, err)
		}
		if i == 0 {
			loaded = time.Now()
		}
		if *quiet {
			continue
		}
		r := result{Address: fmt.Sprintf("%#x", a), Symbol: []frame{}}
		for _, fr := range frames {
			r.Symbol = append(r.Symbol, frame{fr.Column, fr.File, fr.Function, fr.Line})
		}
		enc.Encode(r)
	}
	if *quiet {
		end := time.Now()
		rest := end.Sub(loaded)
		fmt.Fprintf(os.Stderr, "load %.1f ms, %d addresses in %.1f ms, %.0f addresses/s\n",
			float64(loaded.Sub(start).Microseconds())/1e3, len(addrs)-1, float64(rest.Microseconds())/1e3,
			float64(len(addrs)-1)/rest.Seconds())
	}
}
