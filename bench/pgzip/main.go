// Command pgzip compresses stdin to stdout with klauspost/pgzip at the settings Strata's layer
// writer uses, for bench/run.sh's W3 limit `fill + tar | pgzip`. The settings are read from
// layer/compress.go (-settings) rather than copied here, so the limit follows the writer.
//
//	pgzip -settings layer/compress.go [-print] <in >out
//	pgzip -level N -block BYTES -blocks N <in >out
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/pgzip"
)

// settings are what the output depends on (level, block) and how many blocks run at once.
type settings struct {
	level, block, blocks int
}

func main() {
	var s settings
	from := flag.String("settings", "", "read the level, block size and blocks from this layer/compress.go")
	print := flag.Bool("print", false, "print the settings and exit")
	flag.IntVar(&s.level, "level", 0, "compression level (without -settings)")
	flag.IntVar(&s.block, "block", 0, "block size in bytes (without -settings)")
	flag.IntVar(&s.blocks, "blocks", 0, "blocks compressed at once (without -settings)")
	flag.Parse()
	if *from != "" {
		var err error
		if s, err = readSettings(*from); err != nil {
			fmt.Fprintln(os.Stderr, "pgzip:", err)
			os.Exit(1)
		}
	}
	if s.block <= 0 || s.blocks <= 0 {
		fmt.Fprintln(os.Stderr, "usage: pgzip -settings layer/compress.go | -level N -block BYTES -blocks N")
		os.Exit(2)
	}
	if *print {
		fmt.Printf("level %d, %d KiB blocks, %d at once\n", s.level, s.block>>10, s.blocks)
		return
	}
	if err := compress(os.Stdout, bufio.NewReaderSize(os.Stdin, 1<<20), s); err != nil {
		fmt.Fprintln(os.Stderr, "pgzip:", err)
		os.Exit(1)
	}
}

func compress(w io.Writer, r io.Reader, s settings) error {
	zw, err := pgzip.NewWriterLevel(w, s.level)
	if err != nil {
		return fmt.Errorf("creating writer: %w", err)
	}
	if err := zw.SetConcurrency(s.block, s.blocks); err != nil {
		return fmt.Errorf("configuring writer: %w", err)
	}
	if _, err := io.Copy(zw, r); err != nil {
		return fmt.Errorf("compressing: %w", err)
	}
	return zw.Close()
}

// gzipNames are the level constants layer/compress.go may name (gzip.BestSpeed...).
var gzipNames = map[string]int{
	"NoCompression": gzip.NoCompression, "BestSpeed": gzip.BestSpeed,
	"BestCompression": gzip.BestCompression, "DefaultCompression": gzip.DefaultCompression,
	"ConstantCompression": gzip.ConstantCompression, "HuffmanOnly": gzip.HuffmanOnly,
	"StatelessCompression": gzip.StatelessCompression,
}

// readSettings finds the constants gzipLevel and gzipBlockSize and the gzip writer's
// SetConcurrency(block, blocks) call in the layer writer's source.
func readSettings(path string) (settings, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		return settings{}, fmt.Errorf("parsing %s: %w", path, err)
	}
	consts := map[string]ast.Expr{}
	var call *ast.CallExpr
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.ValueSpec:
			for i, name := range n.Names {
				if i < len(n.Values) {
					consts[name.Name] = n.Values[i]
				}
			}
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "SetConcurrency" && len(n.Args) == 2 && call == nil {
				call = n
			}
		}
		return true
	})
	if call == nil {
		return settings{}, fmt.Errorf("%s: no SetConcurrency call", path)
	}
	var s settings
	// Each setting from the first of its sources that evaluates: the named constant, else
	// the SetConcurrency argument (which may be a parameter fed by the constant).
	for _, v := range []struct {
		dst   *int
		what  string
		exprs []ast.Expr
	}{
		{&s.level, "gzipLevel", []ast.Expr{consts["gzipLevel"]}},
		{&s.block, "the block size", []ast.Expr{consts["gzipBlockSize"], call.Args[0]}},
		{&s.blocks, "the blocks at once", []ast.Expr{call.Args[1], consts["gzipBlocks"]}},
	} {
		found := false
		var errs []error
		for _, e := range v.exprs {
			if e == nil {
				continue
			}
			n, err := eval(e, consts)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			*v.dst, found = n, true
			break
		}
		if !found {
			return settings{}, fmt.Errorf("%s: no value for %s (%v)", path, v.what, errors.Join(errs...))
		}
	}
	return s, nil
}

// eval is the integer value of a constant expression of the file: literals, gzip.NAME, the
// file's constants, and arithmetic on them (1 << 20, 2*other).
func eval(e ast.Expr, consts map[string]ast.Expr) (int, error) {
	v, err := value(e, consts, 0)
	if err != nil {
		return 0, err
	}
	n, ok := constant.Int64Val(constant.ToInt(v))
	if !ok {
		return 0, fmt.Errorf("%s is not an integer", types.ExprString(e))
	}
	return int(n), nil
}

func value(e ast.Expr, consts map[string]ast.Expr, depth int) (constant.Value, error) {
	if depth > 20 {
		return nil, fmt.Errorf("constants too deep at %s", types.ExprString(e))
	}
	switch e := e.(type) {
	case *ast.BasicLit:
		return constant.MakeFromLiteral(e.Value, e.Kind, 0), nil
	case *ast.ParenExpr:
		return value(e.X, consts, depth+1)
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok && x.Name == "gzip" {
			if n, ok := gzipNames[e.Sel.Name]; ok {
				return constant.MakeInt64(int64(n)), nil
			}
		}
	case *ast.Ident:
		if c, ok := consts[e.Name]; ok {
			return value(c, consts, depth+1)
		}
	case *ast.UnaryExpr:
		x, err := value(e.X, consts, depth+1)
		if err != nil {
			return nil, err
		}
		return constant.UnaryOp(e.Op, x, 0), nil
	case *ast.BinaryExpr:
		x, err := value(e.X, consts, depth+1)
		if err != nil {
			return nil, err
		}
		y, err := value(e.Y, consts, depth+1)
		if err != nil {
			return nil, err
		}
		if e.Op == token.SHL || e.Op == token.SHR {
			s, ok := constant.Uint64Val(y)
			if !ok {
				return nil, fmt.Errorf("bad shift in %s", types.ExprString(e))
			}
			return constant.Shift(x, e.Op, uint(s)), nil
		}
		op := e.Op
		if op == token.QUO && x.Kind() == constant.Int && y.Kind() == constant.Int {
			op = token.QUO_ASSIGN // go/constant's integer division, as Go's for integer constants
		}
		return constant.BinaryOp(x, op, y), nil
	}
	return nil, fmt.Errorf("cannot evaluate %s", types.ExprString(e))
}
