Console.Error.WriteLine("onex: not yet implemented.");
return 2;
