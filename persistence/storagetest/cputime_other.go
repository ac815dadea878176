//go:build !unix

package storagetest

import "time"

func processCPU() time.Duration { return 0 }

func processCPUSplit() (user, sys time.Duration) { return 0, 0 }
