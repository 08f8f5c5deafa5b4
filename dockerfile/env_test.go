package dockerfile

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// setEnvCopy is the environment update envList replaces: a fresh copy per
// step, the key's first entry replaced in place, else appended.
func setEnvCopy(env []string, key, value string) []string {
	env = slices.Clone(env)
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}

// TestEnvListSnapshots checks that envList gives the environments a copy
// per step gave, that a later set never changes an earlier snapshot, and
// that its lookups are shell.EnvsFromSlice's, repeated keys included.
func TestEnvListSnapshots(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	base := []string{"PATH=/bin", "A=base", "A=repeated", "NOVALUE"}
	e, want := newEnvList(base), slices.Clone(base)
	var snaps, wants [][]string
	for i := range 2000 {
		key := fmt.Sprintf("K%d", r.IntN(50))
		if r.IntN(10) == 0 {
			key = "A"
		}
		value := fmt.Sprint(i)
		e.set(key, value)
		want = setEnvCopy(want, key, value)
		snaps, wants = append(snaps, e.snapshot()), append(wants, want)
		checkLookups(t, e, want, key, "A", "NOVALUE", "MISSING")
	}
	for i := range snaps {
		if !slices.Equal(snaps[i], wants[i]) {
			t.Fatalf("snapshot %d = %q, want %q", i, snaps[i], wants[i])
		}
	}
	if !slices.Equal(base, []string{"PATH=/bin", "A=base", "A=repeated", "NOVALUE"}) {
		t.Errorf("the base changed: %q", base)
	}
}

func checkLookups(t *testing.T, e *envList, env []string, keys ...string) {
	t.Helper()
	ref := shell.EnvsFromSlice(env)
	for _, k := range keys {
		gv, gok := e.Get(k)
		wv, wok := ref.Get(k)
		if gv != wv || gok != wok {
			t.Fatalf("Get(%q) = %q, %t; want %q, %t", k, gv, gok, wv, wok)
		}
	}
	if !slices.Equal(e.Keys(), ref.Keys()) {
		t.Fatalf("Keys() = %q, want %q", e.Keys(), ref.Keys())
	}
}

// TestSnapshotsKeepNil checks that an empty environment or arg list stays
// nil or empty as given: the builder's cache key encodes the two apart.
func TestSnapshotsKeepNil(t *testing.T) {
	if s := newEnvList(nil).snapshot(); s != nil {
		t.Errorf("env from nil = %#v", s)
	}
	if s := newEnvList([]string{}).snapshot(); s == nil {
		t.Error("env from empty is nil")
	}
	if s := newArgSet(nil).snapshot(); s != nil {
		t.Errorf("args from nil = %#v", s)
	}
	if s := newArgSet([]Arg{}).snapshot(); s == nil {
		t.Error("args from empty is nil")
	}
}

// TestArgSetSnapshots checks that redeclaring an arg replaces it in place
// without changing what an earlier step saw.
func TestArgSetSnapshots(t *testing.T) {
	s := newArgSet([]Arg{{Key: "A", Value: "1", HasValue: true}})
	first := s.snapshot()
	s.set(Arg{Key: "B"})
	second := s.snapshot()
	s.set(Arg{Key: "A", Value: "2", HasValue: true})
	third := s.snapshot()
	for _, c := range []struct {
		got  []Arg
		want string
	}{{first, "[A=1]"}, {second, "[A=1 B]"}, {third, "[A=2 B]"}} {
		if got := fmt.Sprint(c.got); got != c.want {
			t.Errorf("snapshot %s, want %s", got, c.want)
		}
	}
}
