package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// flagRow is a row of docs/build-flags.md.
type flagRow struct {
	names  []string // long names, without --
	status string
}

func readFlagsTable(t *testing.T) (rows []flagRow, own []string) {
	t.Helper()
	b, err := os.ReadFile("../../docs/build-flags.md")
	if err != nil {
		t.Fatal(err)
	}
	long := regexp.MustCompile("--([a-z][a-z-]*)")
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.Contains(cells[1], "`") {
			if strings.HasPrefix(line, "Strata's own flags") || (len(own) > 0 && line != "") || strings.Contains(line, "`--insecure-registry`") {
				for _, m := range long.FindAllStringSubmatch(line, -1) {
					own = append(own, m[1])
				}
			}
			continue
		}
		r := flagRow{status: strings.TrimSpace(cells[2])}
		for _, m := range long.FindAllStringSubmatch(cells[1], -1) {
			r.names = append(r.names, m[1])
		}
		rows = append(rows, r)
	}
	if len(rows) < 40 || len(own) == 0 {
		t.Fatalf("docs/build-flags.md: read %d rows and %d own flags; the table's form changed", len(rows), len(own))
	}
	return rows, own
}

// TestBuildFlagsTable keeps docs/build-flags.md true: every flag `strata build --help`
// lists is in its table as supported (or later) or among strata's own, every flag of the
// table is known to strata, and each refused or later flag fails before any work naming
// itself, while each ignored one is accepted.
func TestBuildFlagsTable(t *testing.T) {
	rows, own := readFlagsTable(t)
	help, err := runCLI(t, "build", "--help")
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, r := range rows {
		for _, n := range r.names {
			status[n] = r.status
		}
	}
	listed := regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--([a-z][a-z-]*)`)
	var inHelp []string
	for _, m := range listed.FindAllStringSubmatch(help, -1) {
		inHelp = append(inHelp, m[1])
	}
	if len(inHelp) < 30 {
		t.Fatalf("read only %d flags from strata build --help:\n%s", len(inHelp), help)
	}
	for _, n := range inHelp {
		switch s := status[n]; {
		case n == "help":
		case s == "supported" || s == "later":
		case slices.Contains(own, n):
		case s == "":
			t.Errorf("--%s is in strata build --help but not in docs/build-flags.md", n)
		default:
			t.Errorf("--%s is in strata build --help but the table says %q", n, s)
		}
	}
	for _, n := range own {
		if !slices.Contains(inHelp, n) {
			t.Errorf("docs/build-flags.md names --%s as strata's own, but strata build --help lacks it", n)
		}
	}
	flags := newBuildCmd().Flags()
	ctx := writeContext(t, "FROM scratch\n")
	for _, r := range rows {
		for _, n := range r.names {
			f := flags.Lookup(n)
			if f == nil {
				t.Errorf("docs/build-flags.md lists --%s as %s, but strata build does not know it", n, r.status)
				continue
			}
			switch r.status {
			case "supported":
				if f.Hidden {
					t.Errorf("--%s is supported but hidden from --help", n)
				}
			case "ignored":
				if out, err := runCLI(t, "build", flagArg(f, "x"), "--print", ctx); err != nil {
					t.Errorf("--%s should be accepted and ignored: %v\n%s", n, err, out)
				}
			case "refused", "later":
				// Whatever the rest of the command, before any work: the context does not exist.
				value := "x"
				if n == "provenance" || n == "sbom" {
					value = "true"
				}
				out, err := runCLI(t, "build", flagArg(f, value), "/nonexistent-context")
				if err == nil || !strings.Contains(err.Error()+out, "--"+n) || strings.Contains(err.Error()+out, "nonexistent") {
					t.Errorf("--%s is %s: want one line naming it before the context is read, got %v\n%s", n, r.status, err, out)
				}
			default:
				t.Errorf("--%s: unknown status %q", n, r.status)
			}
		}
	}
}

func flagArg(f *pflag.Flag, value string) string {
	if f.Value.Type() == "bool" {
		return "--" + f.Name
	}
	return "--" + f.Name + "=" + value
}
