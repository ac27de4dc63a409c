// Dist
