package redisstore

// Die stops the Store's liveness loop without deleting its key, as a
// process killed with SIGKILL would: the key then expires by itself.
func (s *Store) Die() {
	s.hb.close.Do(func() {
		started := true
		s.hb.once.Do(func() { started = false })
		if started {
			close(s.hb.stop)
			<-s.hb.done
		}
	})
}
