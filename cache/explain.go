package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-build/strata/store"
)

// Explain is what a step's key covered, as --explain-cache compares it with
// the closest entry when the step misses: the step's place (stage and
// number) and instruction, the key it builds on and the base its chain
// starts from, each other input by name ("build arg V", "env PATH",
// "user", ...) and the files it reads. The builder fills it from the same
// values its key is computed from.
type Explain struct {
	Key     string `json:"key"`
	Stage   string `json:"stage"`
	Step    int    `json:"step"`
	Command string `json:"command"`
	// Parent is the key of the filesystem the step starts from; Base
	// names what that chain starts from ("image debian:12@sha256:...",
	// "scratch linux/amd64", "stage build").
	Parent string            `json:"parent"`
	Base   string            `json:"base"`
	Inputs map[string]string `json:"inputs,omitempty"`
	Files  []File            `json:"files,omitempty"`
}

// File is one file a step reads (COPY's sources, a RUN's context binds).
type File struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
	Mode string `json:"mode"`
	// Owner is uid:gid where the step keeps owners.
	Owner string `json:"owner,omitempty"`
	// Content is a file's sha256, a link's target or a device's number.
	Content string `json:"content,omitempty"`
	// Xattrs is a digest of the extended attributes the layer keeps.
	Xattrs string `json:"xattrs,omitempty"`
	// LinkTo is the path of the file this one is a hard link of.
	LinkTo string `json:"linkTo,omitempty"`
}

// slotKeys are the cache keys an explain record is found under: the step's
// place, and its instruction.
func (e *Explain) slotKeys() []string {
	return []string{"explain-slot " + e.Stage + " " + strconv.Itoa(e.Step), "explain-command " + e.Command}
}

// keptPerSlot is how many recent entries a slot remembers.
const keptPerSlot = 8

func (c *Local) putExplain(key string, e *Explain) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding explain record: %w", err)
	}
	c.w.put("explain "+key, b)
	for _, slot := range e.slotKeys() {
		// Advisory: concurrent builds may drop each other's newest key.
		keys := c.slot(slot)
		keys = slices.DeleteFunc(keys, func(k string) bool { return k == key })
		keys = append(keys, key)
		if len(keys) > keptPerSlot {
			keys = keys[len(keys)-keptPerSlot:]
		}
		b, err := json.Marshal(keys)
		if err != nil {
			return err
		}
		c.w.put(slot, b)
	}
	return nil
}

func (c *Local) slot(slot string) []string {
	b, err := c.w.get(slot)
	if err != nil {
		return nil
	}
	var keys []string
	_ = json.Unmarshal(b, &keys)
	return keys
}

// Similar are the recorded entries for e's place or instruction.
func (c *Local) Similar(_ context.Context, e *Explain) ([]*Explain, error) {
	var out []*Explain
	seen := map[string]bool{}
	for _, slot := range e.slotKeys() {
		for _, k := range c.slot(slot) {
			if seen[k] || k == e.Key {
				continue
			}
			seen[k] = true
			b, err := c.w.get("explain " + k)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			var x Explain
			if json.Unmarshal(b, &x) == nil {
				out = append(out, &x)
			}
		}
	}
	return out, nil
}

// Closest is the candidate most like e: one that builds on the same
// filesystem if any, then the one with the fewest differences.
func Closest(e *Explain, candidates []*Explain) *Explain {
	var best *Explain
	bestScore := 0
	for _, c := range candidates {
		score := len(diffInputs(c, e)) + len(diffFiles(c.Files, e.Files))
		if c.Parent != e.Parent {
			score += 1 << 20
		}
		if c.Stage != e.Stage || c.Step != e.Step {
			score += 1 << 10
		}
		if best == nil || score < bestScore {
			best, bestScore = c, score
		}
	}
	return best
}

// maxLines bounds what a miss prints of the files that differ.
const maxLines = 10

// Diff says, one line each, what differs between the entry old and the
// step e that missed.
func Diff(old, e *Explain) []string {
	if old == nil {
		return []string{"no entry for this step in the cache"}
	}
	if old.Parent != e.Parent {
		if old.Base != e.Base {
			return []string{fmt.Sprintf("the base changed: %s -> %s", old.Base, e.Base)}
		}
		return []string{"an earlier step changed (the first step that missed says what)"}
	}
	lines := diffInputs(old, e)
	if old.Command != e.Command {
		lines = append([]string{fmt.Sprintf("instruction: %s -> %s", quote(old.Command), quote(e.Command))}, lines...)
	}
	files := diffFiles(old.Files, e.Files)
	if len(files) > maxLines {
		files = append(files[:maxLines], fmt.Sprintf("and %d more files", len(files)-maxLines))
	}
	lines = append(lines, files...)
	if len(lines) == 0 {
		// The keys differ in something the record does not name (another
		// strata version, say).
		lines = []string{"an input not recorded here differs (the entry may come from another strata version)"}
	}
	return lines
}

func diffInputs(old, e *Explain) []string {
	names := map[string]bool{}
	for k := range old.Inputs {
		names[k] = true
	}
	for k := range e.Inputs {
		names[k] = true
	}
	var out []string
	for _, k := range slices.Sorted(mapKeys(names)) {
		a, aok := old.Inputs[k]
		b, bok := e.Inputs[k]
		switch {
		case aok && bok && a == b:
		case !aok:
			out = append(out, fmt.Sprintf("%s: set to %s (was unset)", k, quote(b)))
		case !bok:
			out = append(out, fmt.Sprintf("%s: unset (was %s)", k, quote(a)))
		default:
			out = append(out, fmt.Sprintf("%s: %s -> %s", k, quote(a), quote(b)))
		}
	}
	return out
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// diffFiles lists the files added, removed or changed, in path order, and
// what changed of each.
func diffFiles(old, cur []File) []string {
	was := map[string]File{}
	for _, f := range old {
		was[f.Path] = f
	}
	now := map[string]bool{}
	var out []string
	for _, f := range cur {
		now[f.Path] = true
		o, ok := was[f.Path]
		if !ok {
			out = append(out, f.Path+": added")
			continue
		}
		var what []string
		if o.Kind != f.Kind {
			what = append(what, "type "+o.Kind+" -> "+f.Kind)
		} else if o.Content != f.Content {
			switch f.Kind {
			case "symlink":
				what = append(what, "link target "+quote(o.Content)+" -> "+quote(f.Content))
			default:
				what = append(what, "content differs")
			}
		}
		if o.Mode != f.Mode {
			what = append(what, "mode "+o.Mode+" -> "+f.Mode)
		}
		if o.Owner != f.Owner {
			what = append(what, "owner "+o.Owner+" -> "+f.Owner)
		}
		if o.Xattrs != f.Xattrs {
			what = append(what, "extended attributes differ")
		}
		if o.LinkTo != f.LinkTo {
			what = append(what, "hard link differs")
		}
		if len(what) > 0 {
			out = append(out, f.Path+": "+strings.Join(what, "; "))
		}
	}
	for _, f := range old {
		if !now[f.Path] {
			out = append(out, f.Path+": removed")
		}
	}
	slices.Sort(out)
	return out
}

// quote shows a value in a line of its own: quoted, bounded.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strconv.Quote(s)
}
