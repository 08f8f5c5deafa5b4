package main

import (
	"flag"
	"fmt"
	"html"
	"io"
	"math"
	"runtime"
	"strings"
)

// plotLine is one curve of a panel; points with a non-positive value are left out (a log
// axis has no place for them).
type plotLine struct {
	name, color, dash string
	xs, ys            []float64
}

// plotPanel is one log-log chart.
type plotPanel struct {
	title, xlabel, ylabel string
	lines                 []plotLine
}

var builderColors = map[string]string{"strata": "#1f77b4", "buildkit": "#d62728"}

const (
	panelW, panelH = 420, 250
	marginL        = 62 // room for the y tick labels and title
	marginR        = 16
	marginT        = 30
	marginB        = 42
	headerH        = 56
)

// plotCmd writes the SVG of a scale results file: for each series a row of two log-log
// panels, time and peak RSS over the size, one line per builder.
func plotCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("plot", flag.ContinueOnError)
	out := fs.String("o", "-", "the SVG file to write (- is stdout)")
	title := fs.String("title", "Strata and BuildKit at scale", "the plot's title")
	cpus := fs.Int("cpus", runtime.NumCPU(), "CPUs the builds had, for the stages' ideal")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("plot: want RESULTS.jsonl")
	}
	recs, err := readRecords(fs.Arg(0))
	if err != nil {
		return err
	}
	panels := scalePanels(collectScale(recs), *cpus)
	if *out == "-" {
		return writeSVG(stdout, *title, panels)
	}
	return writeOut(*out, func(w io.Writer) error { return writeSVG(w, *title, panels) })
}

// xUnit converts a series' size to what its axis shows: layers in GiB (MiB when all are
// smaller), the rest as counted.
func xUnit(series string, largest int64) (string, float64) {
	switch series {
	case "layer":
		if largest >= 1<<30 {
			return "layer size (GiB)", 1 << 30
		}
		return "layer size (MiB)", 1 << 20
	case "files":
		return "files in the context", 1
	case "instructions":
		return "instructions", 1
	}
	return "independent stages", 1
}

// scalePanels makes two panels per curve. Time panels get a reference: the ideal for the
// stages, elsewhere a slope-1 (linear) line through the first builder's smallest point.
func scalePanels(d scaleData, cpus int) []plotPanel {
	var out []plotPanel
	for _, k := range d.keys {
		sizes := d.sizes(k)
		xlabel, div := xUnit(k.series, sizes[len(sizes)-1])
		tp := plotPanel{title: k.String() + ": time", xlabel: xlabel, ylabel: "seconds"}
		mp := plotPanel{title: k.String() + ": peak RSS", xlabel: xlabel, ylabel: "MiB"}
		for _, b := range scaleBuilders {
			xs, ts, ms := d.curve(k, b)
			if len(xs) == 0 {
				continue
			}
			for i := range xs {
				xs[i] /= div
			}
			tp.lines = append(tp.lines, plotLine{name: b, color: builderColors[b], xs: xs, ys: ts})
			mp.lines = append(mp.lines, plotLine{name: b, color: builderColors[b], xs: xs, ys: ms})
		}
		switch {
		case k.series == "stages" && d.unit > 0:
			ref := plotLine{name: "ideal", color: "#555", dash: "6 4"}
			for _, n := range sizes {
				ref.xs = append(ref.xs, float64(n))
				ref.ys = append(ref.ys, idealStages(n, d.unit, cpus))
			}
			tp.lines = append(tp.lines, ref)
		case len(tp.lines) > 0 && len(sizes) > 1:
			first := tp.lines[0]
			x0, y0 := first.xs[0], first.ys[0]
			xn := float64(sizes[len(sizes)-1]) / div
			tp.lines = append(tp.lines, plotLine{name: "linear", color: "#999", dash: "2 4",
				xs: []float64{x0, xn}, ys: []float64{y0, y0 * xn / x0}})
		}
		out = append(out, tp, mp)
	}
	return out
}

// logRange is a log axis: the span of the values in log10, padded, never empty.
func logRange(vals []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if v > 0 {
			lo, hi = min(lo, math.Log10(v)), max(hi, math.Log10(v))
		}
	}
	if math.IsInf(lo, 1) {
		return 0, 1
	}
	if hi-lo < 0.3 {
		mid := (lo + hi) / 2
		lo, hi = mid-0.15, mid+0.15
	}
	pad := (hi - lo) * 0.08
	return lo - pad, hi + pad
}

// logTicks are the 1, 2, 5 x 10^k values within the axis.
func logTicks(lo, hi float64) []float64 {
	var out []float64
	for e := math.Floor(lo); e <= math.Ceil(hi); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if l := math.Log10(v); l >= lo && l <= hi {
				out = append(out, v)
			}
		}
	}
	return out
}

// tickLabel is a short label: 500, 2k, 16k, 1M, 0.5.
func tickLabel(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}

// writeSVG draws the panels two to a row under a title and a legend.
func writeSVG(w io.Writer, title string, panels []plotPanel) error {
	rows := (len(panels) + 1) / 2
	width, height := 2*panelW, headerH+rows*panelH
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="15" text-anchor="middle">%s</text>`+"\n", width/2, html.EscapeString(title))
	legend := []plotLine{{name: "strata", color: builderColors["strata"]}, {name: "buildkit", color: builderColors["buildkit"]},
		{name: "linear (slope 1)", color: "#999", dash: "2 4"}, {name: "ideal parallel stages", color: "#555", dash: "6 4"}}
	x := 20
	for _, l := range legend {
		fmt.Fprintf(&b, `<line x1="%d" y1="40" x2="%d" y2="40" stroke="%s" stroke-width="2"%s/>`, x, x+24, l.color, dashAttr(l.dash))
		fmt.Fprintf(&b, `<text x="%d" y="44">%s</text>`+"\n", x+30, html.EscapeString(l.name))
		x += 40 + 7*len(l.name)
	}
	for i, p := range panels {
		writePanel(&b, p, (i%2)*panelW, headerH+(i/2)*panelH)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func dashAttr(dash string) string {
	if dash == "" {
		return ""
	}
	return fmt.Sprintf(` stroke-dasharray="%s"`, dash)
}

// writePanel draws one log-log panel with its top left corner at (ox, oy).
func writePanel(b *strings.Builder, p plotPanel, ox, oy int) {
	var xv, yv []float64
	for _, l := range p.lines {
		xv, yv = append(xv, l.xs...), append(yv, l.ys...)
	}
	xlo, xhi := logRange(xv)
	ylo, yhi := logRange(yv)
	left, top := float64(ox+marginL), float64(oy+marginT)
	pw, ph := float64(panelW-marginL-marginR), float64(panelH-marginT-marginB)
	px := func(v float64) float64 { return left + (math.Log10(v)-xlo)/(xhi-xlo)*pw }
	py := func(v float64) float64 { return top + ph - (math.Log10(v)-ylo)/(yhi-ylo)*ph }
	fmt.Fprintf(b, `<g class="panel"><text x="%.1f" y="%d" font-size="12" text-anchor="middle">%s</text>`+"\n", left+pw/2, oy+18, html.EscapeString(p.title))
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", left, top, pw, ph)
	for _, t := range logTicks(xlo, xhi) {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n",
			px(t), top, px(t), top+ph, px(t), top+ph+14, tickLabel(t))
	}
	for _, t := range logTicks(ylo, yhi) {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n",
			left, py(t), left+pw, py(t), left-4, py(t)+4, tickLabel(t))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s (log)</text>`+"\n", left+pw/2, top+ph+32, html.EscapeString(p.xlabel))
	fmt.Fprintf(b, `<text transform="translate(%d,%.1f) rotate(-90)" text-anchor="middle">%s (log)</text>`+"\n", ox+14, top+ph/2, html.EscapeString(p.ylabel))
	for _, l := range p.lines {
		var pts []string
		for i := range l.xs {
			if l.xs[i] > 0 && l.ys[i] > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(l.xs[i]), py(l.ys[i])))
			}
		}
		if len(pts) == 0 {
			continue
		}
		fmt.Fprintf(b, `<polyline class="line" data-name="%s" points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n",
			html.EscapeString(l.name), strings.Join(pts, " "), l.color, dashAttr(l.dash))
		if l.dash == "" {
			for _, pt := range pts {
				x, y, _ := strings.Cut(pt, ",")
				fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`, x, y, l.color)
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("</g>\n")
}
