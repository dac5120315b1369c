"""Clinical workflow domain services (no HTTP): the reading worklist, reports and consult
opinions, critical-value alerts, referrals."""
