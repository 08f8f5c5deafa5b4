package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The scale series of bench/scale.sh: how time and peak RSS grow with the size of one input,
// each series varying one thing. A point is named SERIES/SIZE, its size in the series' unit:
// files in the context, bytes of the layer, instructions, stages.
var seriesNames = []string{"files", "layer", "instructions", "stages"}

var (
	fullScale = map[string][]int64{
		"files":        {10_000, 100_000, 500_000},
		"layer":        {1 << 30, 4 << 30, 16 << 30},
		"instructions": {100, 1_000, 5_000},
		"stages":       {2, 8, 32},
	}
	quickScale = map[string][]int64{
		"files":        {1_000, 2_000, 5_000},
		"layer":        {64 << 20, 128 << 20, 256 << 20},
		"instructions": {10, 50, 100},
		"stages":       {2, 4, 8},
	}
)

// maxLayers is how many layer-creating instructions an instructions point has at most: with
// the base's layers it stays below the 127 layers docker's overlay2 can stack.
const maxLayers = 90

// scaleOptions are the scale-workloads subcommand's flags and argument.
type scaleOptions struct {
	quick      bool
	series     string
	list       bool
	point      string
	registry   string
	stageBytes int64
	dir        string
}

// scaleWorkloadsCmd lists the points (-list) or writes one point's context into DIR/ctx, and
// for the files series DIR/orig and DIR/change (one file's content before and after).
// Points are generated one at a time, so that the largest (500k files, 16 GiB) never share
// the disk.
func scaleWorkloadsCmd(args []string, stdout io.Writer) error {
	var o scaleOptions
	fs := flag.NewFlagSet("scale-workloads", flag.ContinueOnError)
	fs.BoolVar(&o.quick, "quick", false, "small sizes, for development")
	fs.StringVar(&o.series, "series", strings.Join(seriesNames, " "), "the series to list")
	fs.BoolVar(&o.list, "list", false, "print the points, one a line: NAME SIZE DISK-BYTES DATA-BYTES")
	fs.StringVar(&o.point, "point", "", "the point SERIES/SIZE to write into DIR")
	fs.StringVar(&o.registry, "registry", "127.0.0.1:5000", "registry holding busybox:bench")
	fs.Int64Var(&o.stageBytes, "stage-bytes", 1<<30, "random bytes each stage of the stages series generates (its CPU work)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.list {
		return listPoints(stdout, o)
	}
	if o.point == "" || fs.NArg() != 1 {
		return fmt.Errorf("scale-workloads: want -list, or -point SERIES/SIZE and one DIR argument")
	}
	o.dir = fs.Arg(0)
	series, size, err := parsePoint(o.point)
	if err != nil {
		return err
	}
	return genPoint(o, series, size)
}

// listPoints prints each point of the chosen series with the disk it needs at most.
func listPoints(w io.Writer, o scaleOptions) error {
	sizes := fullScale
	if o.quick {
		sizes = quickScale
	}
	for _, s := range strings.Fields(o.series) {
		pts, ok := sizes[s]
		if !ok {
			return fmt.Errorf("scale-workloads: unknown series %q (want %s)", s, strings.Join(seriesNames, ", "))
		}
		for _, n := range pts {
			fmt.Fprintf(w, "%s/%d %d %d %d\n", s, n, n, diskNeed(s, n, o.stageBytes), dataBytes(s, n))
		}
	}
	return nil
}

// dataBytes is about how much data a point's build stores, which bench/scale.sh's
// --peer-max-gib compares: the context's files, or the layer's size.
func dataBytes(series string, n int64) int64 {
	switch series {
	case "files":
		return n * 2560 // 1-4 KiB each
	case "layer":
		return n
	}
	return 0
}

// diskNeed is the point's size on disk: the context, or the layer's data. bench/scale.sh
// refuses a point when the disk has less than three times this free, room for the copies
// the builds make of it (the layer, the output) with some to spare.
func diskNeed(series string, n, stageBytes int64) int64 {
	switch series {
	case "files":
		return n * 8 << 10 // a 1-4 KiB file takes a 4 KiB block and an inode, in the context and the layer
	case "layer":
		// The point's size. A builder holds about twice that at its peak (the data, then its
		// incompressible half in the layer blob and again in the tarball), which three times
		// it leaves room for; more would refuse 16 GiB on a disk that has the room.
		return n
	case "stages":
		return n << 20
	}
	return 64 << 20
}

func parsePoint(p string) (string, int64, error) {
	s, n, ok := strings.Cut(p, "/")
	size, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || size <= 0 {
		return "", 0, fmt.Errorf("point %q: want SERIES/SIZE", p)
	}
	if _, known := fullScale[s]; !known {
		return "", 0, fmt.Errorf("point %q: unknown series %q", p, s)
	}
	return s, size, nil
}

func genPoint(o scaleOptions, series string, n int64) error {
	ctx := filepath.Join(o.dir, "ctx")
	var df string
	var err error
	switch series {
	case "files":
		df, err = genFiles(o.dir, o.registry, int(n))
	case "layer":
		df = layerDockerfile(o.registry, n)
	case "instructions":
		df, err = genInstructions(ctx, o.registry, int(n))
	case "stages":
		df = stagesDockerfile(o.registry, int(n), o.stageBytes)
	}
	if err != nil {
		return err
	}
	if err := writeText(filepath.Join(ctx, "Dockerfile"), df); err != nil {
		return err
	}
	return fixDirTimes(ctx)
}

// filePath is where the files series puts file i: 50 to a directory, three levels deep.
func filePath(i int) string {
	return fmt.Sprintf("src/g%03d/h%02d/k%d/f%06d.txt", i/5000, i/250%20, i/50%5, i)
}

// genFiles writes n text files of 1-4 KiB (source-like) and saves the middle one's content
// and a changed copy for the one-file-change rebuild.
func genFiles(dir, registry string, n int) (string, error) {
	ctx := filepath.Join(dir, "ctx")
	rng := newRand(21)
	buf := make([]byte, 0, 8<<10) // above 4 KiB plus a word: fillChunk never grows it
	for i := range n {
		p := filepath.Join(ctx, filePath(i))
		if i%50 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return "", fmt.Errorf("creating %s: %w", filepath.Dir(p), err)
			}
		}
		buf = fillChunk(buf[:0], "text", 1024+rng.IntN(3*1024+1), rng)
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			return "", fmt.Errorf("writing %s: %w", p, err)
		}
		if err := os.Chtimes(p, fixedTime, fixedTime); err != nil {
			return "", fmt.Errorf("setting the time of %s: %w", p, err)
		}
	}
	if err := changeFile(dir, filePath(n/2)); err != nil {
		return "", err
	}
	return fmt.Sprintf("FROM %s/busybox:bench\nCOPY . /app\n", registry), nil
}

// layerDockerfile is one RUN writing n bytes: half random, half zeros. Random data is what
// every byte costs to hash and compress when nothing compresses; zeros cost the RUN nothing
// to write (text would take the RUN itself 6 s a GiB to generate), so the time left is the
// builder's, and they show the compressor's fast path.
func layerDockerfile(registry string, n int64) string {
	half := n / 2
	return fmt.Sprintf(`FROM %s/busybox:bench
RUN mkdir /data && benchtool fill -seed 5 -kind random -bytes %d /data/random.bin \
 && benchtool fill -kind zero -bytes %d /data/zeros.bin
`, registry, half, n-half)
}

// genInstructions writes a Dockerfile of n instructions after FROM: every k-th one makes a
// layer (RUN and COPY of a small file in turn), k chosen so that at most maxLayers do; the
// others are metadata (ENV, LABEL, ARG in turn), as long Dockerfiles are.
func genInstructions(ctx, registry string, n int) (string, error) {
	k := max(2, (n+maxLayers-1)/maxLayers)
	rng := newRand(31)
	if err := os.MkdirAll(filepath.Join(ctx, "files"), 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", ctx, err)
	}
	var df strings.Builder
	fmt.Fprintf(&df, "FROM %s/busybox:bench\n", registry)
	layers, meta := 0, 0
	for i := range n {
		if i%k != k-1 {
			switch meta % 3 {
			case 0:
				fmt.Fprintf(&df, "ENV STEP_%05d=value-%05d\n", i, i)
			case 1:
				fmt.Fprintf(&df, "LABEL bench.step.%05d=\"value %05d\"\n", i, i)
			default:
				fmt.Fprintf(&df, "ARG ARG_%05d=value-%05d\n", i, i)
			}
			meta++
			continue
		}
		if layers%2 == 0 {
			fmt.Fprintf(&df, "RUN mkdir -p /steps && echo step %d > /steps/run-%05d.txt\n", i, i)
		} else {
			name := fmt.Sprintf("files/step-%05d.txt", i)
			if err := writeData(filepath.Join(ctx, name), "text", int64(1024+rng.IntN(3*1024)), rng); err != nil {
				return "", err
			}
			fmt.Fprintf(&df, "COPY %s /steps/\n", name)
		}
		layers++
	}
	return df.String(), nil
}

// stagesDockerfile is n independent stages, each generating stageBytes of random data into
// /dev/null (CPU-bound: the ChaCha8 generator, one core each) with its own seed, so that no
// builder can share one stage's result with another; the final stage copies each one's small
// output. Ideally they run min(n, CPUs) at a time.
func stagesDockerfile(registry string, n int, stageBytes int64) string {
	var df strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&df, "FROM %s/busybox:bench AS s%02d\n", registry, i)
		fmt.Fprintf(&df, "RUN mkdir /out && benchtool fill -seed %d -kind random -bytes %d - >/dev/null && echo %d > /out/s%02d.txt\n\n", i, stageBytes, i, i)
	}
	fmt.Fprintf(&df, "FROM %s/busybox:bench\n", registry)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&df, "COPY --from=s%02d /out/ /stages/\n", i)
	}
	return df.String()
}
