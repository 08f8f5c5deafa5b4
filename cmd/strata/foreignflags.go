package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// foreignFlag is a `docker build` / `docker buildx build` flag strata has no use for: CI
// scripts pass them, so each is known (hidden from --help) and either ignored, where it
// changes nothing strata does, or refused before any work with the reason, where ignoring
// it would give a build other than the one asked for. docs/build-flags.md lists every
// docker build flag; TestBuildFlagsTable keeps the two in step.
type foreignFlag struct {
	name, short string
	// boolean flags take no value (--squash); the others take one.
	boolean bool
	// ignored flags are accepted; the others are refused with reason.
	ignored bool
	reason  string
}

var foreignFlags = []foreignFlag{
	{name: "builder", ignored: true, reason: "strata builds in its own process: there is no builder instance to choose"},
	{name: "debug", short: "D", boolean: true, ignored: true, reason: "strata's errors already name the Dockerfile line and the step's output"},
	{name: "compress", boolean: true, ignored: true, reason: "the context is read where it is; nothing is sent to a daemon"},
	{name: "disable-content-trust", boolean: true, ignored: true, reason: "docker's content trust (Notary v1) is retired; strata verifies every blob by digest"},
	{name: "cgroup-parent", reason: "each RUN step runs in a cgroup strata makes for it (see --pids-limit)"},
	{name: "cpu-period", reason: "RUN steps have no CPU limits in strata, only a pids limit (--pids-limit)"},
	{name: "cpu-quota", reason: "RUN steps have no CPU limits in strata, only a pids limit (--pids-limit)"},
	{name: "cpu-shares", short: "c", reason: "RUN steps have no CPU limits in strata, only a pids limit (--pids-limit)"},
	{name: "cpuset-cpus", reason: "RUN steps have no CPU limits in strata, only a pids limit (--pids-limit)"},
	{name: "cpuset-mems", reason: "RUN steps have no CPU limits in strata, only a pids limit (--pids-limit)"},
	{name: "memory", short: "m", reason: "RUN steps have no memory limit in strata, only a pids limit (--pids-limit)"},
	{name: "memory-swap", reason: "RUN steps have no memory limit in strata, only a pids limit (--pids-limit)"},
	{name: "security-opt", reason: "RUN steps always run under Docker's default seccomp profile and capabilities; nothing loosens the sandbox"},
	{name: "squash", boolean: true, reason: "squashing an image's layers is an experimental docker feature strata does not implement"},
	{name: "stream", boolean: true, reason: "an experimental docker feature for sending the context to a daemon; strata has no daemon"},
	{name: "detach", boolean: true, reason: "strata has no daemon: the build runs in this process until it ends"},
	{name: "call", reason: "strata runs only the build (--call=build); --print shows the parsed stage graph"},
	{name: "check", boolean: true, reason: "strata runs its Dockerfile checks during every build (# check=error=true fails it); --print parses without building"},
}

// foreignValues holds what the foreign flags were given, by name.
type foreignValues map[string]*string

func (o *buildOptions) addForeignFlags(f *pflag.FlagSet) {
	o.foreign = foreignValues{}
	for _, ff := range foreignFlags {
		v := new(string)
		o.foreign[ff.name] = v
		usage := "not supported: " + ff.reason
		if ff.ignored {
			usage = "ignored: " + ff.reason
		}
		if ff.boolean {
			f.VarP(&boolString{v}, ff.name, ff.short, usage)
			f.Lookup(ff.name).NoOptDefVal = "true"
		} else {
			f.StringVarP(v, ff.name, ff.short, "", usage)
		}
		_ = f.MarkHidden(ff.name)
	}
}

// checkForeignFlags refuses the foreign flags strata cannot honour and notes the ignored
// ones on w; --call=build is the build itself.
func (o *buildOptions) checkForeignFlags(f *pflag.FlagSet, w io.Writer) error {
	for _, ff := range foreignFlags {
		fl := f.Lookup(ff.name)
		if fl == nil || !fl.Changed {
			continue
		}
		v := *o.foreign[ff.name]
		switch {
		case ff.name == "call" && v == "build":
		case ff.boolean && v == "false":
		case ff.ignored:
			if w != nil {
				fmt.Fprintf(w, "strata: --%s ignored: %s\n", ff.name, ff.reason)
			}
		default:
			return fmt.Errorf("--%s: not supported by strata: %s", ff.name, ff.reason)
		}
	}
	return nil
}

// boolString is a boolean flag kept as its text, so --squash=false can be told from
// --squash.
type boolString struct{ v *string }

func (b *boolString) String() string {
	if b.v == nil {
		return ""
	}
	return *b.v
}

func (b *boolString) Set(s string) error {
	switch strings.ToLower(s) {
	case "true", "1", "t":
		*b.v = "true"
	case "false", "0", "f":
		*b.v = "false"
	default:
		return fmt.Errorf("want true or false")
	}
	return nil
}

func (b *boolString) Type() string { return "bool" }
