package builder

import (
	"reflect"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/dockerfile"
)

// lastRun parses a one-stage Dockerfile body and returns its last step, a RUN.
func lastRun(t *testing.T, body string) *instructions.RunCommand {
	t.Helper()
	g, err := dockerfile.Parse([]byte("FROM scratch\n"+body), dockerfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	steps := g.Target.Steps
	c, ok := steps[len(steps)-1].Command.(*instructions.RunCommand)
	if !ok {
		t.Fatalf("last step is %T", steps[len(steps)-1].Command)
	}
	return c
}

// TestRunArgsHeredocs pins the argv of RUN heredocs to BuildKit's
// dispatchRun: a heredoc alone whose body (tabs stripped for <<-) starts
// with #! runs as the file /dev/pipes/<name> through the shell.
func TestRunArgsHeredocs(t *testing.T) {
	sh := func(cmd string) []string { return []string{"/bin/sh", "-c", cmd} }
	cases := []struct {
		name  string
		body  string
		shell []string
		want  []string
	}{
		{"shebang", "RUN <<EOF\n#!/bin/sh\necho hi\nEOF\n", nil, sh("/dev/pipes/EOF")},
		{"env shebang, own name", "RUN <<SCRIPT\n#!/usr/bin/env sh\necho hi\nSCRIPT\n", nil, sh("/dev/pipes/SCRIPT")},
		{"quoted name", "RUN <<'EOF'\n#!/bin/sh\necho $HOME\nEOF\n", nil, sh("/dev/pipes/EOF")},
		{"SHELL runs the path", "RUN <<EOF\n#!/bin/sh\necho hi\nEOF\n", []string{"/bin/bash", "-e", "-c"}, []string{"/bin/bash", "-e", "-c", "/dev/pipes/EOF"}},
		{"shebang after <<- strips tabs", "RUN <<-EOF\n\t#!/bin/sh\n\techo hi\n\tEOF\n", nil, sh("/dev/pipes/EOF")},
		{"<<- body without shebang", "RUN <<-EOF\n\techo a\n\t\techo b\n\tEOF\n", nil, sh("echo a\necho b\n")},
		{"#! not on the first line", "RUN <<EOF\necho a\n#!/bin/sh\nEOF\n", nil, sh("echo a\n#!/bin/sh\n")},
		{"heredoc fed to a command", "RUN python3 <<EOF\n#!/bin/sh\nEOF\n", nil, sh("python3 <<EOF\n#!/bin/sh\nEOF")},
	}
	for _, c := range cases {
		if got := runArgs(lastRun(t, c.body), c.shell); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: runArgs = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestCheckRunHeredocs(t *testing.T) {
	for body, ok := range map[string]bool{
		"RUN <<EOF\n#!/bin/sh\necho hi\nEOF\n":     true,
		"RUN <<EOF\necho hi\nEOF\n":                true,
		"RUN <<a/b\n#!/bin/sh\necho hi\na/b\n":     false,
		"RUN cat <<a/b\n#!/bin/sh\necho hi\na/b\n": true,
	} {
		if err := checkRun(lastRun(t, body)); (err == nil) != ok {
			t.Errorf("checkRun(%q) = %v", body, err)
		}
	}
}
