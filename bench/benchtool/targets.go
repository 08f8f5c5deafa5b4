package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// outcome is one target evaluated for one builder (strata, or the baseline strata-before).
type outcome struct {
	measured, value string // the medians it is made of, and the figure held against the limit
	known, pass     bool   // known: every median it needs is there
}

// goal is one of the targets: what it is, its limit, and how to evaluate it.
type goal struct {
	what, limit string
	eval        func(recs []record, b string) outcome
}

var notRun = outcome{measured: "not run", value: "n/a"}

// vsPeer: b's median over BuildKit's for one workload and phase, at most max.
func vsPeer(wl, phase, what string, max float64) goal {
	return goal{fmt.Sprintf("%s %s, Strata / BuildKit", strings.ToUpper(wl), what), fmt.Sprintf("<= %.2fx", max),
		func(recs []record, b string) outcome {
			s, sok, _ := median(pick(recs, wl, b, phase), seconds)
			k, kok, _ := median(pick(recs, wl, target, phase), seconds)
			if !sok || !kok || k == 0 {
				return notRun
			}
			return outcome{fmt.Sprintf("%.2f s / %.2f s", s, k), fmt.Sprintf("%.3fx", s/k), true, s/k <= max}
		}}
}

// fixedCost: the time n steps add to W0's cold build, per step, at most maxMS.
func fixedCost(wl string, n int, what string, maxMS float64) goal {
	return goal{fmt.Sprintf("fixed cost of %s: (%s - W0) / %d, cold", what, strings.ToUpper(wl), n), fmt.Sprintf("<= %g ms", maxMS),
		func(recs []record, b string) outcome {
			s, sok, _ := median(pick(recs, wl, b, "cold"), seconds)
			z, zok, _ := median(pick(recs, "w0", b, "cold"), seconds)
			if !sok || !zok {
				return notRun
			}
			ms := (s - z) * 1000 / float64(n)
			return outcome{fmt.Sprintf("(%.3f s - %.3f s) / %d", s, z, n), fmt.Sprintf("%.2f ms", ms), true, ms <= maxMS}
		}}
}

// vsLimit: b's median for the limit's phase over the limit's time, at most max.
func vsLimit(name string, max float64) goal {
	i := slices.IndexFunc(limits, func(l limit) bool { return l.name == name })
	l := limits[i] // a name not in limits is a programming error: panic in the tests
	what := fmt.Sprintf("%s %s / (%s)", strings.ToUpper(l.workload), l.phase, l.name)
	return goal{what, fmt.Sprintf("<= %.2fx", max),
		func(recs []record, b string) outcome {
			s, sok, _ := median(pick(recs, l.workload, b, l.phase), seconds)
			lim, lok := limitSeconds(recs, l)
			if !sok || !lok || lim == 0 {
				return notRun
			}
			return outcome{fmt.Sprintf("%.2f s / %.2f s", s, lim), fmt.Sprintf("%.3fx", s/lim), true, s/lim <= max}
		}}
}

// maxRSSMiB is the peak RSS target, for every workload and phase.
const maxRSSMiB = 64

// rssGoal: the highest of b's median peak RSS over wl's phases, at most maxRSSMiB.
func rssGoal(wl string) goal {
	return goal{fmt.Sprintf("%s peak RSS, highest phase median", strings.ToUpper(wl)), fmt.Sprintf("<= %d MiB", maxRSSMiB),
		func(recs []record, b string) outcome {
			var parts []string
			top, found := 0.0, false
			for _, phase := range []string{"cold", "warm", "change", "cold-zstd"} {
				m, ok, _ := median(pick(recs, wl, b, phase), rssMiB)
				if !ok {
					continue
				}
				if m == 0 {
					// A build shorter than measure's 50 ms sampling period has no sample.
					parts = append(parts, phase+" not sampled")
					continue
				}
				parts = append(parts, fmt.Sprintf("%s %.1f", phase, m))
				top, found = max(top, m), true
			}
			if !found {
				return outcome{strings.Join(parts, ", "), "n/a", false, false}
			}
			return outcome{strings.Join(parts, ", ") + " (MiB)", fmt.Sprintf("%.1f MiB", top), true, top <= maxRSSMiB}
		}}
}

// sizeGoal: b's cold output tarball no larger than Buildah's.
func sizeGoal(wl string) goal {
	return goal{fmt.Sprintf("%s image size, Strata / Buildah", strings.ToUpper(wl)), "<= 1.00x",
		func(recs []record, b string) outcome {
			s, sok, _ := median(pick(recs, wl, b, "cold"), sizeMB)
			h, hok, _ := median(pick(recs, wl, "buildah", "cold"), sizeMB)
			if !sok || !hok || h == 0 {
				return notRun
			}
			return outcome{fmt.Sprintf("%.2f MB / %.2f MB", s, h), fmt.Sprintf("%.3fx", s/h), true, s <= h}
		}}
}

// goals are the targets for the workloads in recs: the fixed ones always (not run
// when their workloads were not), peak RSS for each workload Strata built, image size for
// each Buildah built too.
func goals(recs []record) []goal {
	gs := []goal{
		vsPeer("w1", "cold", "cold build", 0.35),
		vsPeer("w1", "change", "one-file change", 0.35),
		vsPeer("w1", "warm", "warm rebuild", 0.05),
		vsPeer("w4", "cold", "cold build", 0.2),
		fixedCost("w5", w5Steps, "a metadata step", 1),
		fixedCost("w6", w6Steps, "RUN true", 5),
		vsLimit("fill + tar -c | zstd -3", 1.5),
		vsLimit("fill + tar -c | pgzip", 1.2),
		vsLimit("gzip -dc rootfs.tar.gz >/dev/null", 1.5),
	}
	var wls []string
	for _, r := range recs {
		if r.Builder == "strata" && r.Phase != "limit" && !slices.Contains(wls, r.Workload) {
			wls = append(wls, r.Workload)
		}
	}
	slices.Sort(wls)
	for _, wl := range wls {
		gs = append(gs, rssGoal(wl))
	}
	for _, wl := range wls {
		if len(pick(recs, wl, "buildah", "cold")) > 0 {
			gs = append(gs, sizeGoal(wl))
		}
	}
	return gs
}

func result(o outcome) string {
	switch {
	case !o.known:
		return "n/a"
	case o.pass:
		return "PASS"
	}
	return "FAIL"
}

// writeTargets prints one row per target for Strata, and the baseline's value and result
// when it was run.
func writeTargets(w io.Writer, recs []record, before bool) {
	fmt.Fprintln(w, "\nTargets (medians; ratios are Strata's time over the reference's):")
	fmt.Fprintln(w)
	if before {
		fmt.Fprintln(w, "| target | measured | limit | value | result | before | before result |")
		fmt.Fprintln(w, "|---|---|--:|--:|---|--:|---|")
	} else {
		fmt.Fprintln(w, "| target | measured | limit | value | result |")
		fmt.Fprintln(w, "|---|---|--:|--:|---|")
	}
	pass, known := 0, 0
	for _, g := range goals(recs) {
		o := g.eval(recs, "strata")
		cells := []string{escape(g.what), o.measured, g.limit, o.value, result(o)}
		if before {
			ob := g.eval(recs, "strata-before")
			cells = append(cells, ob.value, result(ob))
		}
		if o.known {
			known++
			if o.pass {
				pass++
			}
		}
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
	fmt.Fprintf(w, "\n%d of %d measured targets hold.\n", pass, known)
}
