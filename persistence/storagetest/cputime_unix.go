//go:build unix

package storagetest

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	user, sys := processCPUSplit()
	return user + sys
}

// processCPUSplit is processCPU as user and system time: the system time
// of a commit is mostly the kernel writing and syncing the files.
func processCPUSplit() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}
