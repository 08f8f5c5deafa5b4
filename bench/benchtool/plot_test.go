package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
)

// svgLine is a polyline of the plot as a reader of the SVG finds it.
type svgLine struct {
	panel, name string
	pts         [][2]float64
}

// parseSVG checks the SVG is well-formed XML and returns its panels' titles and lines.
func parseSVG(t *testing.T, svg []byte) (titles []string, lines []svgLine) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	inTitle := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			attr := map[string]string{}
			for _, a := range el.Attr {
				attr[a.Name.Local] = a.Value
			}
			inTitle = el.Name.Local == "text" && attr["font-size"] == "12"
			if el.Name.Local == "polyline" {
				l := svgLine{name: attr["data-name"]}
				if len(titles) > 0 {
					l.panel = titles[len(titles)-1]
				}
				for _, p := range strings.Fields(attr["points"]) {
					var x, y float64
					if _, err := fmt.Sscanf(p, "%g,%g", &x, &y); err != nil {
						t.Fatalf("polyline point %q: %v", p, err)
					}
					l.pts = append(l.pts, [2]float64{x, y})
				}
				lines = append(lines, l)
			}
		case xml.CharData:
			if inTitle {
				titles = append(titles, string(el))
				inTitle = false
			}
		}
	}
	return titles, lines
}

func TestPlotSVG(t *testing.T) {
	var out bytes.Buffer
	if err := writeSVG(&out, "scale <test>", scalePanels(collectScale(scaleRecords()), 2)); err != nil {
		t.Fatal(err)
	}
	titles, lines := parseSVG(t, out.Bytes())
	wantTitles := []string{"files: time", "files: peak RSS", "files (change): time", "files (change): peak RSS",
		"layer: time", "layer: peak RSS", "stages: time", "stages: peak RSS"}
	if strings.Join(titles, "|") != strings.Join(wantTitles, "|") {
		t.Errorf("panels %q, want %q", titles, wantTitles)
	}
	byPanel := map[string]map[string]svgLine{}
	for _, l := range lines {
		if byPanel[l.panel] == nil {
			byPanel[l.panel] = map[string]svgLine{}
		}
		byPanel[l.panel][l.name] = l
	}
	ft := byPanel["files: time"]
	if len(ft["strata"].pts) != 3 || len(ft["buildkit"].pts) != 3 || len(ft["linear"].pts) != 2 {
		t.Fatalf("files: time has lines %v, want strata and buildkit of 3 points and a linear reference", ft)
	}
	// Strata's made-up times are exactly linear: on log-log axes its line is the reference's.
	s, ref := ft["strata"].pts, ft["linear"].pts
	if !near(s[0], ref[0]) || !near(s[2], ref[1]) {
		t.Errorf("strata %v is not on the linear reference %v", s, ref)
	}
	// Buildkit's quadratic time climbs twice as steeply (SVG's y grows downwards).
	bk := ft["buildkit"].pts
	if rise, run := bk[0][1]-bk[2][1], bk[2][0]-bk[0][0]; run <= 0 || rise <= 0 {
		t.Errorf("buildkit's line %v does not go up and right", bk)
	}
	if got := (bk[0][1] - bk[2][1]) / (s[0][1] - s[2][1]); math.Abs(got-2) > 0.05 {
		t.Errorf("buildkit's rise is %.2f times strata's, want 2 (slope 2 against 1)", got)
	}
	// A failed point is left out, the RSS panel of a flat curve is flat, the stages get the ideal.
	if n := len(byPanel["files (change): time"]["buildkit"].pts); n != 2 {
		t.Errorf("buildkit's change line has %d points, want 2 (one failed)", n)
	}
	if m := byPanel["files: peak RSS"]["strata"].pts; m[0][1] != m[2][1] {
		t.Errorf("strata's flat RSS is drawn sloped: %v", m)
	}
	if len(byPanel["stages: time"]["ideal"].pts) != 2 || len(byPanel["layer: time"]) != 0 {
		t.Errorf("stages: time lines %v, layer: time lines %v", byPanel["stages: time"], byPanel["layer: time"])
	}
	if !strings.Contains(out.String(), "layer size (GiB)") {
		t.Error("the 1 GiB layer's axis is not in GiB")
	}
	if !strings.Contains(out.String(), "scale &lt;test&gt;") {
		t.Error("the title is not escaped")
	}
}

func near(a, b [2]float64) bool { return math.Abs(a[0]-b[0]) < 0.2 && math.Abs(a[1]-b[1]) < 0.2 }

func TestLogTicks(t *testing.T) {
	lo, hi := logRange([]float64{1000, 5000})
	got := logTicks(lo, hi)
	want := []float64{1000, 2000, 5000}
	if len(got) != len(want) {
		t.Fatalf("ticks %v, want %v", got, want)
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-6 || tickLabel(got[i]) != []string{"1k", "2k", "5k"}[i] {
			t.Errorf("tick %d: %v (%s), want %v", i, got[i], tickLabel(got[i]), want[i])
		}
	}
}
