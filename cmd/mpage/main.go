// Command mpage makes, inspects and changes ext2 images through mpage's own
// I/O stack: the page cache, buffer heads and the multi-page bios of
// Linux's fs/mpage.c, over the image file.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "mpage: %v\n", err)
		os.Exit(1)
	}
}

// globals are the flags every command takes.
type globals struct {
	cache    string // page-cache limit, e.g. "256M"
	stats    string // "", "text" or "json"
	readOnly bool
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "mpage",
		Short:         "Make, inspect and change ext2 images through a Go rebuild of Linux's block I/O stack",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.cache, "cache", "256M", "page-cache memory limit (K, M, G suffixes)")
	pf.StringVar(&g.stats, "stats", "", "print I/O counters at exit: text (the default when given without a value) or json (one object on stderr)")
	pf.Lookup("stats").NoOptDefVal = "text"
	pf.BoolVar(&g.readOnly, "readonly", false, "open images read-only")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		switch g.stats {
		case "", "text", "json":
		default:
			return fmt.Errorf("--stats takes text or json, not %q", g.stats)
		}
		if _, err := parseSize(g.cache); err != nil {
			return fmt.Errorf("--cache: %w", err)
		}
		return nil
	}
	return root
}
