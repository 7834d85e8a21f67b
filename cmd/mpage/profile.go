package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// startProfile starts a CPU profile of the run into cpuPath (the hidden
// --cpuprofile flag) and an execution trace into tracePath (--trace, for
// go tool trace: where goroutines waited, system calls, scheduling); ""
// starts nothing.
func (a *app) startProfile(cpuPath, tracePath string) error {
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err != nil {
			return fmt.Errorf("--cpuprofile: cannot create %s: %v", cpuPath, errors.Unwrap(err))
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("--cpuprofile %s: %w", cpuPath, err)
		}
		a.profile = f
	}
	if tracePath != "" {
		f, err := os.Create(tracePath)
		if err != nil {
			return fmt.Errorf("--trace: cannot create %s: %v", tracePath, errors.Unwrap(err))
		}
		if err := trace.Start(f); err != nil {
			f.Close()
			return fmt.Errorf("--trace %s: %w", tracePath, err)
		}
		a.trace = f
	}
	return nil
}

// stopProfile ends the CPU profile and the trace, if they are being
// written, and writes the allocation profile if one was asked for.
func (a *app) stopProfile() {
	var errs []error
	if a.memPath != "" {
		f, err := os.Create(a.memPath)
		if err == nil {
			err = pprof.Lookup("allocs").WriteTo(f, 0)
			errs = append(errs, err, f.Close())
		} else {
			errs = append(errs, err)
		}
		a.memPath = ""
	}
	if a.profile != nil {
		pprof.StopCPUProfile()
		errs = append(errs, a.profile.Close())
		a.profile = nil
	}
	if a.trace != nil {
		trace.Stop()
		errs = append(errs, a.trace.Close())
		a.trace = nil
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(a.stderr, "mpage: writing the profile: %v\n", err)
	}
}
