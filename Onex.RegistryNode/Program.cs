Console.Error.WriteLine("onex registry node: not yet implemented.");
return 2;
