package policy

// SetTestHook has p call hook at the steps of asking MySQL whether an app
// has preferences: "count" (the state read, MySQL not asked yet) and "set"
// (MySQL answered, the state not recorded yet).
func SetTestHook(p *Policy, hook func(step string)) { p.testHook = hook }
