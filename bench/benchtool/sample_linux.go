package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// sampleEvery is how often the process trees' RSS is summed.
const sampleEvery = 50 * time.Millisecond

// runSampled runs argv, timing it and sampling the summed RSS of its process tree, plus the
// tree rooted at alsoPID when not zero (a daemon that does the build's work), until it exits.
func runSampled(rec *record, argv []string, alsoPID int) error {
	roots := []int{}
	if alsoPID != 0 {
		roots = append(roots, alsoPID)
		rec.BaseRSS = treeRSS(roots)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", argv[0], err)
	}
	roots = append(roots, cmd.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			rec.Seconds = time.Since(start).Seconds()
			if err != nil {
				return fmt.Errorf("%s: %w", argv[0], err)
			}
			return nil
		case <-tick.C:
			rec.PeakRSS = max(rec.PeakRSS, treeRSS(roots))
		}
	}
}

// treeRSS sums the resident set of every process in the trees rooted at roots. Shared pages
// count once per process, as RSS does.
func treeRSS(roots []int) int64 {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(pid); ok {
			children[ppid] = append(children[ppid], pid)
		}
	}
	seen := map[int]bool{}
	var total int64
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		total += rssOf(pid)
		queue = append(queue, children[pid]...)
	}
	return total
}

// parentOf reads the parent pid from /proc/PID/stat (the field after the parenthesised name,
// which may itself hold spaces and parentheses).
func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	f := bytes.Fields(b[i+1:])
	if i < 0 || len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(string(f[1]))
	return ppid, err == nil
}

// rssOf is the resident set of pid in bytes, 0 when it has gone.
func rssOf(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(string(f[1]), 10, 64)
	return pages * int64(os.Getpagesize())
}
